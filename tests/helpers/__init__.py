"""What several tests share: a throwaway project copy, a real S3 server, a small provision corpus."""
