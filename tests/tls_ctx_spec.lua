-- tests/tls_ctx_spec.lua: the module socket.ssl and its contexts: the
-- defaults (secure), the fields with Python's rules, loading keys and CA
-- certificates, ALPN and cipher lists; misuse raises, failures of files
-- and OpenSSL return nil, message, code.
local ssl = require "socket.ssl"
local support = require "tests.support"
local tls = require "tests.tls_support"

describe("socket.ssl", function()
  it("has Python's constants and OpenSSL 3", function()
    assert.are.equal(16, ssl.PROTOCOL_TLS_CLIENT)
    assert.are.equal(17, ssl.PROTOCOL_TLS_SERVER)
    assert.are.same({ 0, 1, 2 }, { ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED })
    assert.are.equal(0x303, ssl.TLSVersion.TLSv1_2)
    assert.are.equal(0x304, ssl.TLSVersion.TLSv1_3)
    assert.truthy(ssl.OPENSSL_VERSION:match("^OpenSSL 3%."))
    assert.is_true(ssl.OPENSSL_VERSION_NUMBER >= 0x30000000)
  end)

  it("makes client contexts that verify the chain and the host name", function()
    local ctx = ssl.create_default_context()
    assert.are.equal(ssl.CERT_REQUIRED, ctx.verify_mode)
    assert.is_true(ctx.check_hostname)
    assert.are.equal(ssl.TLSVersion.TLSv1_2, ctx.minimum_version)
    assert.are.equal(ssl.TLSVersion.MAXIMUM_SUPPORTED, ctx.maximum_version)
    assert.are.equal(ssl.PROTOCOL_TLS_CLIENT, ctx.protocol)
    local same = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert.are.equal(ssl.CERT_REQUIRED, same.verify_mode)
    assert.is_true(same.check_hostname)
    assert.truthy(tostring(ctx):match("^SSLContext %(client"))
  end)

  it("makes server contexts that ask for no client certificate", function()
    for _, ctx in ipairs { ssl.create_default_context("server"),
                           ssl.create_default_context(ssl.Purpose.CLIENT_AUTH),
                           ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER) } do
      assert.are.equal(ssl.CERT_NONE, ctx.verify_mode)
      assert.is_false(ctx.check_hostname)
      assert.are.equal(ssl.PROTOCOL_TLS_SERVER, ctx.protocol)
      assert.are.equal(60, ctx.handshake_timeout)
    end
  end)

  it("keeps Python's rules between verify_mode and check_hostname", function()
    local ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert.has_error(function() ctx.verify_mode = ssl.CERT_NONE end,
      "cannot set verify_mode to CERT_NONE when check_hostname is enabled")
    ctx.check_hostname = false
    ctx.verify_mode = ssl.CERT_NONE
    assert.are.equal(ssl.CERT_NONE, ctx.verify_mode)
    ctx.check_hostname = true   -- needs a verified chain again
    assert.are.equal(ssl.CERT_REQUIRED, ctx.verify_mode)
  end)

  it("sets the versions, the handshake timeout and an SNI callback", function()
    local ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    assert.are.equal(ssl.TLSVersion.TLSv1_3, ctx.minimum_version)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    assert.are.equal(ssl.TLSVersion.TLSv1_2, ctx.maximum_version)
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    assert.are.equal(ssl.TLSVersion.MINIMUM_SUPPORTED, ctx.minimum_version)
    ctx.handshake_timeout = 5
    assert.are.equal(5, ctx.handshake_timeout)
    local fn = function() end
    ctx.sni_callback = fn
    assert.are.equal(fn, ctx.sni_callback)
    ctx.sni_callback = nil
    assert.is_nil(ctx.sni_callback)
  end)

  it("raises on misuse", function()
    local ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert.has_error(function() ssl.SSLContext(3) end)
    assert.has_error(function() ssl.create_default_context("both") end)
    assert.has_error(function() ctx.verify_mode = 7 end)
    assert.has_error(function() ctx.check_hostname = 1 end)
    assert.has_error(function() ctx.minimum_version = 0x999 end)
    assert.has_error(function() ctx.sni_callback = function() end end,
      "sni_callback is for server contexts")
    assert.has_error(function() ctx.handshake_timeout = -1 end)
    assert.has_error(function() ctx.protocol = 17 end)
    assert.has_error(function() ctx.no_such_field = 1 end)
    assert.has_error(function() ctx:load_cert_chain() end)
    assert.has_error(function() ctx:load_verify_locations() end,
      "cafile, capath and cadata cannot all be omitted")
    assert.has_error(function() ctx:set_alpn_protocols("h2") end)
    assert.has_error(function() ctx:set_alpn_protocols({ "" }) end)
    assert.has_error(function() ctx:set_alpn_protocols({ ("x"):rep(256) }) end)
    assert.has_error(function() ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(1) end)
  end)

  it("loads a certificate chain and its key, and says why it cannot", function()
    local c = tls.certs()
    local ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert.is_true(ctx:load_cert_chain(c.server, c.server_key))
    local ok, msg, code = ctx:load_cert_chain(c.dir .. "/missing.pem")
    assert.is_nil(ok)
    assert.are.equal(c.dir .. "/missing.pem: No such file or directory", msg)
    assert.are.equal(2, code)   -- ENOENT
    ok, msg, code = ctx:load_cert_chain(c.server, c.client_key)   -- not its key
    assert.is_nil(ok)
    assert.are.equal("string", type(code))
    assert.truthy(msg:find(c.client_key, 1, true))
  end)

  it("loads an encrypted key with a password string or function", function()
    local c = tls.certs()
    local ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert.is_true(ctx:load_cert_chain(c.server, c.encrypted_key, "secret"))
    local calls = 0
    assert.is_true(ctx:load_cert_chain(c.server, c.encrypted_key, function()
      calls = calls + 1
      return "secret"
    end))
    assert.are.equal(1, calls)
    local ok, _, code = ctx:load_cert_chain(c.server, c.encrypted_key, "wrong")
    assert.is_nil(ok)
    assert.are.equal("string", type(code))
    ok = ctx:load_cert_chain(c.server, c.encrypted_key, function() error("no password") end)
    assert.is_nil(ok)
  end)

  it("loads CA certificates from a file, a directory or a string", function()
    local c = tls.certs()
    local ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert.is_true(ctx:load_verify_locations(c.ca))
    assert.is_true(ctx:load_verify_locations(nil, c.dir))
    local f = assert(io.open(c.ca, "rb"))
    local pem = f:read("a")
    f:close()
    assert.is_true(ctx:load_verify_locations(nil, nil, pem))
    assert.is_true(ctx:load_default_certs())
    local ok, msg, code = ctx:load_verify_locations(nil, nil, "not a certificate")
    assert.is_nil(ok)
    assert.truthy(msg:match("^cadata: "))
    assert.are.equal("string", type(code))
    ok, msg = ctx:load_verify_locations(c.dir .. "/missing.pem")
    assert.is_nil(ok)
    assert.truthy(msg:find("missing.pem", 1, true))
  end)

  it("sets ALPN protocols and cipher lists", function()
    local ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert.is_true(ctx:set_alpn_protocols({ "h2", "http/1.1" }))
    assert.is_true(ctx:set_alpn_protocols({}))
    assert.is_true(ctx:set_ciphers("ECDHE+AESGCM"))
    local ok, msg, code = ctx:set_ciphers("NO-SUCH-CIPHER")
    assert.is_nil(ok)
    assert.truthy(msg:match("^set_ciphers: "))
    assert.are.equal("NO_CIPHER_MATCH", code)
  end)

  -- A libssl that lacked one of the functions TLS calls failed to load
  -- with a clear error, but its handle stayed open: the library stayed
  -- mapped for the life of the process, for nothing.  Here the build's
  -- nossl/libssl.so.N (tests/faults/nossl.c), which has none of them,
  -- comes first in LD_LIBRARY_PATH.
  it("closes a libssl that lacks a function again, and says which", function()
    local dir = support.absolute((os.getenv("LUASOCK_BUILD") or "build") .. "/nossl")
    local r = support.run({ support.LUASOCK, "-e", [[
      local dir = os.getenv("LD_LIBRARY_PATH")
      print(pcall(require, "socket.ssl"))
      for line in io.lines("/proc/self/maps") do
        if line:find(dir, 1, true) then print("still mapped") break end
      end
      print(type(require("socket").socketpair()))   -- the rest of the module works
    ]] }, { env = { LD_LIBRARY_PATH = dir } })
    assert.matches("^false\t[^\n]*TLS is not available: libssl%.so%.%d+ has no [%w_]+\nuserdata\n$",
                   r.out, r.err)
  end)
end)
