-- wrk script: each wrk thread is one signed-in session (its own cookie from the file given after
-- "--"), asking for one page without pause; done() prints the percentiles bench/web.py reads.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  local cookies = {}
  for line in io.lines(args[1]) do table.insert(cookies, line) end
  local cookie = cookies[((id - 1) % #cookies) + 1]
  req = wrk.format("GET", args[2], {["Cookie"] = cookie})
end

function request()
  return req
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d non2xx=%d errors=%d p50=%.2f p95=%.2f p99=%.2f seconds=%.2f\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, summary.duration / 1e6))
end
