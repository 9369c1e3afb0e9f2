-- wrk script: send DEPTH (default 16) GET requests for PATH (default
-- /index.html) in each write, so the server sees them pipelined.
-- Usage: wrk -s scripts/pipeline.lua http://127.0.0.1:8080
-- Env: PIPELINE_DEPTH, PIPELINE_PATH. wrk counts every response, so its
-- Requests/sec is responses per second.

local depth = tonumber(os.getenv("PIPELINE_DEPTH") or "16")
local path = os.getenv("PIPELINE_PATH") or "/index.html"
local batch

init = function(args)
   local requests = {}
   for i = 1, depth do
      requests[i] = wrk.format("GET", path)
   end
   batch = table.concat(requests)
end

request = function()
   return batch
end
