-- wrk script for scripts/three-tier.sh: a mix of the front's own static files
-- and the application's API, in a cycle of ten requests per connection:
--   4 x GET /api/todos        the list (forwarded)
--   2 x GET /api/todos/1      one item (forwarded)
--   3 x GET /index.html       a static file the front serves itself
--   1 x POST /api/todos       with an empty title: the application answers 400.
--                             A request with a body, not idempotent: the one
--                             kind a proxy may not send again elsewhere.
-- Prints "status5xx N 502 N 504 N" at the end: answers of 500 and above, and
-- of those the 502s and 504s (the 400s of the POSTs are expected, so wrk's own
-- non-2xx count is not the error count).

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   count = 0
   status5xx = 0
   status502 = 0
   status504 = 0
   local post = wrk.format("POST", "/api/todos",
      { ["Content-Type"] = "application/json" }, '{"title":""}')
   local list = wrk.format("GET", "/api/todos")
   local item = wrk.format("GET", "/api/todos/1")
   local page = wrk.format("GET", "/index.html")
   cycle = { list, page, item, list, page, post, list, item, page, list }
end

function request()
   count = count + 1
   return cycle[(count - 1) % #cycle + 1]
end

function response(status, headers, body)
   if status >= 500 then
      status5xx = status5xx + 1
      if status == 502 then status502 = status502 + 1 end
      if status == 504 then status504 = status504 + 1 end
   end
end

function done(summary, latency, requests)
   local total, bad, late = 0, 0, 0
   for _, thread in ipairs(threads) do
      total = total + thread:get("status5xx")
      bad = bad + thread:get("status502")
      late = late + thread:get("status504")
   end
   io.write(string.format("status5xx %d 502 %d 504 %d\n", total, bad, late))
end
