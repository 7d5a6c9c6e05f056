-- wrk script: every request a distinct invoice page, so a distinct cache
-- key: a miss. Thread k of T asks pages k, k+T, k+2T, ...; pages stay below
-- 900,000 for runs of up to ~900,000 requests (the routes allow 1,000,000).
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
function init(args)
  page = id
  step = #threads > 0 and #threads or 1
end
request = function()
  local this = page
  page = page + step
  return wrk.format("GET", "/v1/billing/invoices?per_page=3&page=" .. this)
end
