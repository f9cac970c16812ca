"""Taking the model in-house: the merged model directory, GGUF files and llama.cpp's tools (the `export` stage)."""
