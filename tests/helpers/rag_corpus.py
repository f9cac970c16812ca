"""A small provision corpus for the RAG tests: the articles the conftest QA cite, plus a superseded
version (Bộ luật Lao động 2012 Điều 157, maternity leave before the 2019 code's Điều 139) and a decree."""
from __future__ import annotations

import json
from pathlib import Path


def provision(pid, name, number, year, article, title, text, start, end=None, clause=None) -> dict:
    return {"id": pid, "instrument": {"name": name, "number": number, "year": year}, "article": article,
            "clause": clause, "title": title, "text": text, "effective_from": start, "effective_to": end}


BLLD19 = ("Bộ luật Lao động", "45/2019/QH14", 2019)
BLDS = ("Bộ luật Dân sự", "91/2015/QH13", 2015)

PROVISIONS = [
    provision("hngd-2014-d8", "Luật Hôn nhân và gia đình", "52/2014/QH13", 2014, 8, "Điều kiện kết hôn",
              "Nam, nữ kết hôn với nhau phải tuân theo các điều kiện: nam từ đủ 20 tuổi trở lên, nữ từ đủ 18 tuổi "
              "trở lên; việc kết hôn do nam và nữ tự nguyện quyết định.", "2015-01-01"),
    provision("blld-2019-d139", *BLLD19, 139, "Nghỉ thai sản",
              "Lao động nữ được nghỉ thai sản trước và sau khi sinh con là 06 tháng; thời gian nghỉ trước khi sinh "
              "tối đa không quá 02 tháng.", "2021-01-01", clause=1),
    provision("blld-2012-d157", "Bộ luật Lao động", "10/2012/QH13", 2012, 157, "Nghỉ thai sản",
              "Lao động nữ được nghỉ trước và sau khi sinh con là 06 tháng; trường hợp lao động nữ sinh đôi trở "
              "lên thì tính từ con thứ hai trở đi, cứ mỗi con, người mẹ được nghỉ thêm 01 tháng.",
              "2013-05-01", "2020-12-31"),
    provision("blds-2015-d429", *BLDS, 429, "Thời hiệu khởi kiện về hợp đồng",
              "Thời hiệu khởi kiện để yêu cầu Tòa án giải quyết tranh chấp hợp đồng là 03 năm, kể từ ngày người có "
              "quyền yêu cầu biết hoặc phải biết quyền và lợi ích hợp pháp của mình bị xâm phạm.", "2017-01-01"),
    provision("nct-2009-d2", "Luật Người cao tuổi", "39/2009/QH12", 2009, 2, "Người cao tuổi",
              "Người cao tuổi được quy định trong Luật này là công dân Việt Nam từ đủ 60 tuổi trở lên.", "2010-07-01"),
    provision("blhs-2015-d12", "Bộ luật Hình sự", "100/2015/QH13", 2015, 12, "Tuổi chịu trách nhiệm hình sự",
              "Người từ đủ 16 tuổi trở lên phải chịu trách nhiệm hình sự về mọi tội phạm, trừ những tội phạm mà "
              "Bộ luật này có quy định khác.", "2018-01-01"),
    provision("blld-2019-d25", *BLLD19, 25, "Thời gian thử việc",
              "Thời gian thử việc không quá 60 ngày đối với công việc có chức danh nghề nghiệp cần trình độ chuyên "
              "môn, kỹ thuật từ cao đẳng trở lên.", "2021-01-01"),
    provision("blds-2015-d468", *BLDS, 468, "Lãi suất",
              "Lãi suất theo thỏa thuận không được vượt quá 20%/năm của khoản tiền vay, trừ trường hợp luật khác "
              "có liên quan quy định khác.", "2017-01-01"),
    provision("blld-2019-d113", *BLLD19, 113, "Nghỉ hằng năm",
              "Người lao động làm việc đủ 12 tháng cho một người sử dụng lao động thì được nghỉ hằng năm, hưởng "
              "nguyên lương theo hợp đồng lao động 12 ngày làm việc đối với người làm công việc trong điều kiện "
              "bình thường.", "2021-01-01"),
    provision("nd168-2024-d7", "Nghị định", "168/2024/NĐ-CP", 2024, 7, "Xử phạt người điều khiển xe mô tô, xe gắn máy",
              "Phạt tiền người điều khiển xe mô tô, xe gắn máy vi phạm quy tắc giao thông đường bộ, trong đó có "
              "hành vi không đội mũ bảo hiểm.", "2025-01-01"),
]


def write_corpus(directory: Path, records: list[dict] | None = None, name: str = "provisions.jsonl") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rows = PROVISIONS if records is None else records
    (directory / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return directory
