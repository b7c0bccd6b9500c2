-- POST /login with a fresh simulator code on every request. Codes are single-use, so the
-- bench mints them from the server's /sim/wx.login before the run (one user each, which keeps
-- WeChat's per-user quota out of the figure) into the file named by the first script
-- argument; each is sent once, in order. Past the last one a code the simulator never issued
-- goes out: those requests fail, the run shows status errors and `sent` beyond the file, and
-- the bench mints more and runs again rather than report them.

local codes = {}
sent = 0

function init(args)
   for line in io.lines(args[1]) do
      codes[#codes + 1] = line
   end
end

local headers = { ["Content-Type"] = "application/json" }

function request()
   sent = sent + 1
   local code = codes[sent] or "bench-ran-out-of-codes"
   return wrk.format("POST", "/login", headers, '{"code":"' .. code .. '"}')
end
