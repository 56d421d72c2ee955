/*
** nossl.c - a libssl.so.N with none of OpenSSL's functions, found first
** through LD_LIBRARY_PATH by tls_ctx_spec: loading TLS must fail with a
** clear error and close it again.
*/
int nossl_marker(void);
int nossl_marker(void) { return 0; }
