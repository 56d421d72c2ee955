-- tests/tls_scripts_spec.lua: the TLS scripts end to end (https_get,
-- tls_echo; starttls in tls_starttls_spec) as children, against peers nobody here wrote
-- (openssl s_server -www, s_client), and the README's promise: a new user
-- fetches https://localhost:PORT/ from the REPL in three lines, with a
-- certificate made by openssl req.
local support = require "tests.support"
local tls = require "tests.tls_support"

local script = support.script

-- openssl s_server -www (answers a GET with a status page) with cert and
-- key; returns its port.
local function www(cert, key)
  local srv = support.start({ "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", cert,
                              "-key", key, "-www" }, { stdin = "null" })
  return select(2, srv:address("ACCEPT"))
end

describe("scripts/https_get.lua", function()
  it("prints the status line, headers and body of an HTTPS response", function()
    local c = tls.certs()
    local port = www(c.server, c.server_key)
    local res = support.run(script("https_get.lua", "https://localhost:" .. port .. "/",
                                   "--cafile", c.ca), { limit = 20 })
    assert.are.equal(0, res.code, res.err)
    assert.truthy(res.out:match("^HTTP/1%.0 200 ok\r\nContent%-type: text/html\r\n\r\n"), res.out)
    assert.truthy(res.out:find("</HTML>", 1, true))
  end)

  it("refuses a certificate it cannot verify unless --insecure", function()
    local c = tls.certs()
    local port = www(c.selfsigned, c.selfsigned_key)
    local url = "https://localhost:" .. port .. "/"
    local res = support.run(script("https_get.lua", url, "--cafile", c.ca), { limit = 20 })
    assert.are.equal(1, res.code)
    assert.are.equal("https_get: certificate verify failed: self-signed certificate "
                     .. "(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)\n", res.err)
    port = www(c.selfsigned, c.selfsigned_key)
    res = support.run(script("https_get.lua", "https://localhost:" .. port .. "/", "--insecure"),
                      { limit = 20 })
    assert.are.equal(0, res.code, res.err)
    assert.truthy(res.out:match("^HTTP/1%.0 200 ok"))
  end)

  it("says how to use it", function()
    local res = support.run(script("https_get.lua", "http://x/"))
    assert.are.equal(1, res.code)
    assert.truthy(res.err:match("^https_get: usage: "))
  end)
end)

describe("scripts/tls_echo.lua", function()
  it("echoes for openssl s_client, each client in its own task", function()
    local c = tls.certs()
    local srv = support.start(script("tls_echo.lua", c.server, c.server_key, "127.0.0.1", "0"),
                              { stdin = "null" })
    local _, port = srv:address("TLS echo server at:")
    -- a client that connects and says nothing does not hold the others up
    local idle <close> = support.connect(port)
    local cli = support.start({ "openssl", "s_client", "-connect", "127.0.0.1:" .. port,
                                "-CAfile", c.ca, "-verify_return_error", "-verify_hostname",
                                "localhost", "-quiet", "-no_ign_eof" }, { stdin = "pipe" })
    cli:send("echo me\n")
    assert.are.equal("echo me", cli:line(10))
    srv:expect("^Connected by  127%.0%.0%.1:%d+ %(TLSv1%.3%)$", 10)
    cli:close_stdin()
    assert.are.equal(0, cli:wait(10))
  end)
end)

describe("the REPL", function()
  it("fetches https://localhost:PORT/ in three lines with a certificate from openssl req", function()
    local home = support.temp_dir()
    local cert, key = home .. "/cert.pem", home .. "/key.pem"
    assert(os.execute(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      .. "-nodes -keyout %s -out %s -days 1 -subj /CN=localhost "
      .. "-addext subjectAltName=DNS:localhost 2>/dev/null"):format(support.quote(key), support.quote(cert))))
    local port = www(cert, key)
    support.terminal(([[
expect > 
send ctx = require("socket.ssl").create_default_context(); ctx:load_verify_locations("%s")\r
expect \n> 
send s = socket.create_connection({"localhost", %d}, 5, nil, {ssl = ctx})\r
expect \n> 
send s:sendall("GET / HTTP/1.0\\r\\n\\r\\n"); print(s:recv(4096))\r
expect HTTP/1.0 200 ok
expect \n> 
send \x04
exit 0
]]):format(cert, port), home)
  end)
end)
