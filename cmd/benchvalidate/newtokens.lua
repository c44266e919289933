-- newtokens.lua: wrk sends, on each request, the next bearer token of the
-- file named by the script's first argument (one token a line), so that no
-- token is sent twice unless the file runs out. done() prints how many
-- were sent, for the caller to check.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do
    if #line > 0 then
      tokens[#tokens + 1] = "Bearer " .. line
    end
  end
  ntokens = #tokens
  sent = 0
end

function request()
  sent = sent + 1
  return wrk.format(nil, nil, {["Authorization"] = tokens[(sent - 1) % ntokens + 1]})
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("tokens sent %d of %d\n", t:get("sent"), t:get("ntokens")))
  end
end
