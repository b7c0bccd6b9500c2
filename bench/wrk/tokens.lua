-- GET /checklogin with a token picked at random, on every request, from the file named by the
-- first script argument (one token per line): reads spread over the whole store, as a
-- service with many users sees them, rather than one hot row.

local tokens = {}

function init(args)
   for line in io.lines(args[1]) do
      tokens[#tokens + 1] = "Bearer " .. line
   end
   math.randomseed(os.time())
end

function request()
   local headers = { ["Authorization"] = tokens[math.random(#tokens)] }
   return wrk.format("GET", "/checklogin", headers)
end
