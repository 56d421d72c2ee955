/*
** sendfile.c - sock:sendfile(file [, offset [, count]]), as Python's
** socket.sendfile: the bytes of a Lua file (io.open) go to the socket
** with sendfile(2), without passing through Lua.
**
** The file's descriptor is positioned at offset (default: where the file
** stands now) and sendfile(2) advances it as it sends, so the call's
** progress lives in the kernel's file position; at the end the Lua file
** is positioned after the last byte sent, as Python leaves it.  Where
** sendfile(2) cannot read the file (EINVAL, ENOSYS: a file system without
** it) the bytes go through a read and a send instead.  A TLS socket is
** refused: its bytes must go through TLS.
*/
#include <errno.h>
#include <stdio.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lauxlib.h"

#include "base/errors.h"
#include "base/aux.h"
#include "core/wait.h"
#include "socket.h"

/* What one sendfile(2), or one read and send, moves at most. */
#define SENDFILE_CHUNK (1 << 20)
#define COPY_CHUNK 65536

enum { SENDFILE_COPY = 1 };   /* op->flags: sendfile(2) refused, read and send */

/* The descriptor of the Lua file op->obj, or -1 once it was closed (by
** another task while this call waited). */
static int file_fd(const Op *op) {
  luaL_Stream *f = (luaL_Stream *)op->obj;
  return f->closef == NULL ? -1 : fileno(f->f);
}

/* Read and send one chunk from the file's position; put back (seek) what
** the socket did not take.  Returns the count sent (0 at the end of the
** file) or -1 with errno. */
static ssize_t copy_chunk(int out, int in, size_t max) {
  char buf[COPY_CHUNK];
  ssize_t r = read(in, buf, max < sizeof buf ? max : sizeof buf);
  if (r <= 0) return r;
  ssize_t n = send(out, buf, (size_t)r, MSG_NOSIGNAL);
  int err = errno;
  ssize_t unsent = n < 0 ? r : r - n;
  if (unsent > 0 && lseek(in, -unsent, SEEK_CUR) < 0) return -1;
  errno = err;
  return n;
}

/* Send what is left of count (op->size; 0: up to the end of the file),
** one chunk per try: the driver tries again at once after a chunk, and
** waits when the socket is full. */
static int sendfile_try(lua_State *L, Op *op) {
  int in = file_fd(op);
  if (in < 0) return LSOCK_ECLOSED;
  size_t left = op->size == 0 ? SENDFILE_CHUNK : op->size - op->done;
  if (left > SENDFILE_CHUNK) left = SENDFILE_CHUNK;
  ssize_t n;
  if (left == 0) n = 0;
  else if (op->flags & SENDFILE_COPY) n = copy_chunk(sock_ofop(op)->w.fd, in, left);
  else {
    n = sendfile(sock_ofop(op)->w.fd, in, NULL, left);
    if (n < 0 && (errno == EINVAL || errno == ENOSYS) && op->done == 0) {
      op->flags |= SENDFILE_COPY;
      return OP_AGAIN;
    }
  }
  if (n < 0) return errno;
  op->done += (size_t)n;
  if (n > 0) return OP_AGAIN;   /* the next chunk: EAGAIN when the socket is full */
  lua_pushinteger(L, (lua_Integer)op->done);   /* the end of the file, or of count */
  return 0;
}

/* The Lua file is positioned after the last byte sent (stdio's buffer is
** empty since the fflush, so fseeko seeks the descriptor); a failure also reports the count sent: nil, msg, errno, sent. */
static int sendfile_push(lua_State *L, Op *op, int err, int nres) {
  int in = file_fd(op);
  if (in >= 0) {
    off_t pos = lseek(in, 0, SEEK_CUR);
    if (pos >= 0) fseeko(((luaL_Stream *)op->obj)->f, pos, SEEK_SET);
  }
  if (err == 0) return nres;
  err_push(L, err);
  lua_pushinteger(L, (lua_Integer)op->done);
  return 4;
}

/* s:sendfile(file [, offset [, count]]) -> bytes sent; offset defaults to
** the file's position, count (nil or 0) to the end of the file */
static int sock_sendfile(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  luaL_Stream *f = (luaL_Stream *)luaL_checkudata(L, 2, LUA_FILEHANDLE);
  if (f->closef == NULL) return luaL_argerror(L, 2, "attempt to use a closed file");
  lua_Integer offset = aux_optint(L, 3, -1, 0, LUA_MAXINTEGER);
  lua_Integer count = aux_optint(L, 4, 0, 0, LUA_MAXINTEGER);
  if (s->tls) return luaL_error(L, "sendfile is not supported on a TLS socket");
  if (s->type != SOCK_STREAM) return luaL_argerror(L, 1, "stream socket expected");
  lua_settop(L, 2);
  /* fflush sends what a writer left buffered, drops what a reader read
  ** ahead and puts the descriptor at the file's position: stdio's view
  ** and the kernel's agree from here on. */
  int in = fileno(f->f);
  if (fflush(f->f) != 0) return err_push(L, errno);
  if (offset < 0) offset = lseek(in, 0, SEEK_CUR);
  if (offset < 0 || lseek(in, (off_t)offset, SEEK_SET) < 0) return err_push(L, errno);
  Op op;
  sock_opinit(&op, s, WAIT_WRITE, 0, sendfile_try, sendfile_push);
  op.obj = f;
  op.size = (size_t)count;
  op.anchor[1] = 2;
  return wait_op(L, &op);
}

const luaL_Reg sendfile_methods[] = {
  {"sendfile", sock_sendfile},
  {NULL, NULL}
};
