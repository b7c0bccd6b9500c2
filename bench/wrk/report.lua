-- Appended to every wrk script of the bench: once the run is over, one line the bench parses,
-- `BENCH {json}`, instead of wrk's text. Only `done` is defined here, so a GET run stays a
-- static request (wrk calls no Lua per request unless the script defines `request`).
-- `sent` is the login script's count of requests written (absent for GET runs).

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local sent = -1
   for _, thread in ipairs(threads) do
      local n = thread:get("sent")
      if n then sent = math.max(sent, 0) + n end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
      '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"sent":%d}\n',
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), sent))
end
