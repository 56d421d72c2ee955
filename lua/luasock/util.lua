-- luasock.util: module functions written in Lua, added to the socket
-- table by luaopen_socket (create_connection, create_server).
return function(socket)
end
