-- wrk script: POST a body of UPLOAD_BYTES (default 10,000,000) bytes on every
-- request, with a Content-Length, to the URL's path.
-- Usage: wrk -s scripts/upload.lua http://127.0.0.1:8080/upload
-- wrk formats the request once and writes all of it for each request, so its
-- Requests/sec times the body size is the upload's throughput.

local size = tonumber(os.getenv("UPLOAD_BYTES") or "10000000")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("x", size)
