-- tests/tls_support.lua: what the TLS specs share.  A small CA and the
-- certificates the specs need, made with the openssl command line into a
-- private temporary directory once per busted run (removed at exit), and
-- contexts that trust that CA.
--
--   local tls = require "tests.tls_support"
--   local certs = tls.certs()          -- paths: certs.ca, certs.server ...
--   local cctx, sctx = tls.client_ctx(), tls.server_ctx()
local ssl = require "socket.ssl"
local child = require "tests.peers.child"

local M = {}

local function run(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  assert(ok, "command failed: " .. cmd)
end

local q = child.quote

-- An EC key and a request for subject at dir/name.{key,csr}.
local function request(dir, name, subject)
  run(("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s -out %s -subj %s")
    :format(q(dir .. "/" .. name .. ".key"), q(dir .. "/" .. name .. ".csr"), q(subject)))
end

-- A self-signed CA certificate and key at dir/name.{pem,key}.
local function make_ca(dir, name, cn)
  run(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s -out %s -days 30 -subj %s -addext %s -addext %s")
    :format(q(dir .. "/" .. name .. ".key"), q(dir .. "/" .. name .. ".pem"), q("/CN=" .. cn),
            q("basicConstraints=critical,CA:TRUE"), q("keyUsage=critical,keyCertSign,cRLSign")))
end

-- Sign dir/name.csr with the CA ca (a name in dir) into dir/name.pem, with
-- the extensions in text (a file's contents); dates: {start, end} in
-- openssl ca's YYYYMMDDHHMMSSZ form (past validity), else 30 days from now.
local function sign(dir, name, ca, ext, dates)
  local extfile = dir .. "/" .. name .. ".ext"
  local f = assert(io.open(extfile, "w"))
  f:write(ext, "\n")
  f:close()
  if not dates then
    run(("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -out %s -days 30 -extfile %s")
      :format(q(dir .. "/" .. name .. ".csr"), q(dir .. "/" .. ca .. ".pem"),
              q(dir .. "/" .. ca .. ".key"), q(dir .. "/" .. name .. ".pem"), q(extfile)))
    return
  end
  -- openssl x509 cannot date a certificate in the past (OpenSSL 3.0);
  -- openssl ca can, with a minimal database.
  local db = dir .. "/cadb"
  run("mkdir -p " .. q(db))
  io.open(db .. "/index.txt", "w"):close()
  f = assert(io.open(db .. "/serial", "w"))
  f:write("1000\n")
  f:close()
  local cnf = dir .. "/ca.cnf"
  f = assert(io.open(cnf, "w"))
  f:write(("[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\nserial = %s/serial\n" ..
           "new_certs_dir = %s\ndefault_md = sha256\npolicy = p\nunique_subject = no\n" ..
           "[p]\ncommonName = supplied\n"):format(db, db, db))
  f:close()
  run(("openssl ca -batch -notext -config %s -cert %s -keyfile %s -in %s -out %s -startdate %s -enddate %s -extfile %s")
    :format(q(cnf), q(dir .. "/" .. ca .. ".pem"), q(dir .. "/" .. ca .. ".key"),
            q(dir .. "/" .. name .. ".csr"), q(dir .. "/" .. name .. ".pem"),
            dates[1], dates[2], q(extfile)))
end

local LOCAL_SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"

-- Make every certificate in dir; returns the table of paths.
local function make_all(dir)
  make_ca(dir, "ca", "luasock test CA")
  make_ca(dir, "otherca", "luasock other CA")
  request(dir, "server", "/CN=localhost/O=luasock tests")
  sign(dir, "server", "ca", LOCAL_SAN)
  request(dir, "alt", "/CN=alt.localhost")
  sign(dir, "alt", "ca", "subjectAltName=DNS:alt.localhost")
  request(dir, "client", "/CN=luasock client")
  sign(dir, "client", "ca", "extendedKeyUsage=clientAuth")
  request(dir, "expired", "/CN=localhost")
  sign(dir, "expired", "ca", LOCAL_SAN, { "20200101000000Z", "20200201000000Z" })
  request(dir, "wronghost", "/CN=elsewhere.example")
  sign(dir, "wronghost", "ca", "subjectAltName=DNS:elsewhere.example")
  request(dir, "unknownca", "/CN=localhost")
  sign(dir, "unknownca", "otherca", LOCAL_SAN)
  run(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s -out %s -days 30 -subj /CN=localhost -addext %s")
    :format(q(dir .. "/selfsigned.key"), q(dir .. "/selfsigned.pem"), q(LOCAL_SAN)))
  -- the server key again, encrypted with the password "secret"
  run(("openssl pkey -in %s -out %s -aes256 -passout pass:secret")
    :format(q(dir .. "/server.key"), q(dir .. "/encrypted.key")))
  local paths = { dir = dir }
  for _, name in ipairs { "ca", "otherca", "server", "alt", "client", "expired", "wronghost",
                          "unknownca", "selfsigned" } do
    paths[name] = dir .. "/" .. name .. ".pem"
    paths[name .. "_key"] = dir .. "/" .. name .. ".key"
  end
  paths.encrypted_key = dir .. "/encrypted.key"
  return paths
end

local cached

-- The certificates, made on first use: fields ca, server (localhost,
-- 127.0.0.1, ::1), alt (alt.localhost), client (clientAuth), expired,
-- wronghost, unknownca (signed by otherca), selfsigned, each with a
-- NAME_key; encrypted_key (server's key, password "secret"); dir.
function M.certs()
  if cached then return cached end
  local p = assert(io.popen("mktemp -d /tmp/luasock-tls.XXXXXX"))
  local dir = p:read("l")
  p:close()
  cached = make_all(dir)
  -- removed when the state closes (busted exits)
  M._remover = setmetatable({}, { __gc = function() os.execute("rm -rf " .. q(dir)) end })
  return cached
end

-- A client context trusting the test CA (a client certificate too when
-- with_cert is true): create_default_context's settings without the
-- system's CA store, whose loading costs a second under ASan.
function M.client_ctx(with_cert)
  local c = M.certs()
  local ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
  assert(ctx:load_verify_locations(c.ca))
  if with_cert then assert(ctx:load_cert_chain(c.client, c.client_key)) end
  return ctx
end

-- A server context with the certificate name (default "server").
function M.server_ctx(name)
  local c = M.certs()
  name = name or "server"
  local ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
  assert(ctx:load_cert_chain(c[name], c[name .. "_key"]))
  return ctx
end

return M
