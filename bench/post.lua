-- wrk script for the big-post scenario: POST a 1 MiB body (1048576 bytes)
-- to big.py, which reads it fully and answers with its length.
-- Usage: wrk -t2 -c16 -d10s --latency -s bench/post.lua http://127.0.0.1:PORT/
wrk.method = "POST"
wrk.body = string.rep("x", 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
