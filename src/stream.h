/*
** stream.h - what stream.c and stream_io.c share of the stream object.
**
** The stream is split along a layer: stream.c holds the object and the
** socket side (the only syscalls), stream_io.c the read and write calls
** with the read formats.  This header is internal to those two files:
** the rest of the project sees only stream_methods, in socket.h (the
** stream's metatable comes with the first stream).  It holds the LStream struct, its buffer sizes and flags, the
** stream.c helpers the calls use, and the methods stream_io.c gives the
** metatable.  The contracts are above the definitions.
*/
#ifndef STREAM_H
#define STREAM_H

#include "socket.h"

#define RBUF_SIZE 65536   /* first and resting size of the input buffer */
#define WBUF_SIZE 65536   /* default output buffered before a flush */
#define WBUF_FIRST 4096   /* first size of the output buffer */
#define MAXLINE_DEFAULT 65536   /* longest line "l" and "L" return, as asyncio's limit */

enum { ST_READ = 1, ST_WRITE = 2 };
enum { VBUF_NO, VBUF_FULL, VBUF_LINE };   /* in the order of setvbuf's names */

typedef struct LStream {
  LSocket *sock;        /* user value 1 holds it too; NULL once closed */
  int flags;            /* ST_READ | ST_WRITE */
  int closed;
  int eof;              /* recv returned 0: the peer sends nothing more */
  int vbuf;             /* VBUF_* */
  size_t wsize;         /* output buffered before a flush */
  size_t maxline;       /* longest line "l" and "L" return, without its '\n' */
  char *rbuf;
  size_t rcap;
  size_t rstart, rend;  /* unread input: rbuf[rstart .. rend) */
  size_t rpos;          /* the read call's cursor: rstart <= rpos <= rend */
  size_t scan;          /* no '\n' in rbuf[rpos .. scan): rpos <= scan <= rend */
  char *wbuf;
  size_t wcap;
  size_t wstart, wlen;  /* output not sent yet: wbuf[wstart .. wlen) */
} LStream;

/* ---- stream.c: memory and checks ----------------------------------- */
char *stream_bufresize(lua_State *L, char *p, size_t old, size_t size);  /* raises */
LStream *stream_usable(lua_State *L, LStream *st, int need);   /* raises unless open for need */
LStream *stream_checkopen(lua_State *L, int idx, int need);    /* a method's stream, usable */
int stream_fd(const LStream *st);                     /* -1 once closed */

/* ---- stream.c: the socket side ------------------------------------- */
int stream_fill(lua_State *L, LStream *st);           /* one recv into the input */
int stream_send(lua_State *L, LStream *st, const char *p, size_t len, size_t *sent);
int stream_sendbuf(lua_State *L, LStream *st);        /* send output, no wait */

/* ---- stream_io.c: the methods that read and write ------------------ */
int stream_read(lua_State *L);
int stream_lines(lua_State *L);
int stream_write(lua_State *L);
int stream_flush(lua_State *L);

#endif
