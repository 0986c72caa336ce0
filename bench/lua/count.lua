-- Stop each wrk thread after LIMIT responses (the driver substitutes LIMIT): used to send
-- a fixed number of requests for the memory measurement.
local n = 0
function response(status, headers, body)
  n = n + 1
  if n >= LIMIT then wrk.thread:stop() end
end
