-- modelauth.lua: HAProxy asks modelauth's validate about every request
-- (HAProxy 2.5 or later: core.httpclient). Loaded by haproxy.cfg; tested
-- with Debian's HAProxy 2.6 by deploy/gateways/gateways_test.go.
--
--   http-request lua.modelauth-validate <modelauth base URL>
--
-- for the service the path names, /<service>/...; a path that names
-- none is answered 404.
--
-- On validate's 200, the request gets its four identity headers; on any
-- other answer, the client gets validate's status, challenge, Retry-After
-- and JSON body, and the request goes no further. No answer at all (modelauth
-- unreachable, or slower than the timeout) is a 503.

local identity = { "x-modelauth-service", "x-modelauth-subject", "x-modelauth-auth-type", "x-modelauth-key-type" }
local passed = { "content-type", "www-authenticate", "retry-after", "cache-control", "x-content-type-options" }
local timeout_ms = 5000

-- first returns the first value of a header table (name -> values).
local function first(headers, name)
  local values = headers and headers[name]
  if values == nil then return nil end
  for _, v in pairs(values) do return v end
  return nil
end

local function answer(txn, status, code, message, headers)
  headers["content-type"] = { "application/json; charset=utf-8" }
  headers["cache-control"] = { "no-store" }
  txn:done(txn:reply({
    status = status,
    headers = headers,
    body = '{"error":{"code":"' .. code .. '","message":"' .. message .. '"}}\n',
  }))
end

local function unreachable(txn)
  answer(txn, 503, "ServiceUnavailable", "the authorizer cannot be reached", { ["retry-after"] = { "5" } })
end

core.register_action("modelauth-validate", { "http-req" }, function(txn, base)
  local service = string.match(txn.sf:path(), "^/([a-z0-9][a-z0-9%-]*)/")
  if service == nil then
    answer(txn, 404, "NotFound", "no such service", {})
    return
  end
  local headers = {}
  local auth = txn.http:req_get_headers()["authorization"]
  if auth ~= nil then
    local values = {}
    for _, v in pairs(auth) do values[#values + 1] = v end
    headers["authorization"] = values
  end
  local res = core.httpclient():get({
    url = base .. "/api/services/" .. service .. "/validate",
    headers = headers,
    timeout = timeout_ms,
  })
  if res == nil or res.status == nil or res.status == 0 then
    unreachable(txn)
    return
  end
  if res.status == 200 then
    for _, name in ipairs(identity) do
      local v = first(res.headers, name)
      if v == nil then
        unreachable(txn) -- not validate's answer
        return
      end
      txn.http:req_set_header(name, v)
    end
    return
  end
  local out = {}
  for _, name in ipairs(passed) do
    local v = first(res.headers, name)
    if v ~= nil then out[name] = { v } end
  end
  txn:done(txn:reply({ status = res.status, headers = out, body = res.body or "" }))
end, 1)
