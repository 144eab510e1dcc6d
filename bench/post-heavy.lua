-- wrk script of the heavy scenario: the ~20 KB order of bench/heavy.json
-- for the runtime's and the baseline's /lines/{customer}.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("bench/heavy.json", "rb"))
wrk.body = f:read("*a")
f:close()
