/*
** tls_lib.h - OpenSSL, loaded when the module socket.ssl is first opened
** (tls_load, dlopen), not when the program starts: loading and relocating
** libssl and libcrypto took more instructions than all the rest of
** `luasock -e "require'socket'"`.  Included by tls.h after the OpenSSL
** headers, so that each OpenSSL function the TLS files call is, under its
** own name, a pointer of the same type that tls_load fills (the build
** makes the renames from TLS_FUNCS).  The program does not link OpenSSL:
** a function missing from TLS_FUNCS fails to link; add it there.
*/
#ifndef LSOCK_TLS_LIB_H
#define LSOCK_TLS_LIB_H

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lua.h"

#define TLS_FUNCS(X) \
  X(ASN1_INTEGER_to_BN) X(ASN1_STRING_get0_data) X(ASN1_STRING_length) \
  X(ASN1_STRING_to_UTF8) X(ASN1_TIME_print) X(BIO_clear_flags) \
  X(BIO_ctrl) X(BIO_free) X(BIO_get_data) X(BIO_get_new_index) \
  X(BIO_meth_new) X(BIO_meth_set_create) X(BIO_meth_set_ctrl) \
  X(BIO_meth_set_read) X(BIO_meth_set_write) X(BIO_new) \
  X(BIO_new_mem_buf) X(BIO_s_mem) X(BIO_set_data) X(BIO_set_flags) \
  X(BIO_set_init) X(BN_bn2hex) X(BN_free) X(CRYPTO_free) \
  X(ERR_clear_error) X(ERR_peek_error) X(ERR_peek_last_error) \
  X(ERR_reason_error_string) X(GENERAL_NAMES_free) X(OBJ_nid2ln) \
  X(OBJ_obj2nid) X(OBJ_obj2txt) X(OPENSSL_sk_num) X(OPENSSL_sk_value) \
  X(OpenSSL_version) X(OpenSSL_version_num) X(PEM_read_bio_X509) \
  X(SSL_CIPHER_get_bits) X(SSL_CIPHER_get_name) X(SSL_CIPHER_get_version) \
  X(SSL_CTX_callback_ctrl) X(SSL_CTX_check_private_key) X(SSL_CTX_ctrl) \
  X(SSL_CTX_free) X(SSL_CTX_get_cert_store) X(SSL_CTX_get_ex_data) \
  X(SSL_CTX_get_num_tickets) X(SSL_CTX_set_num_tickets) \
  X(SSL_CTX_get_verify_mode) X(SSL_CTX_load_verify_dir) \
  X(SSL_CTX_load_verify_file) X(SSL_CTX_new) X(SSL_CTX_set_alpn_protos) \
  X(SSL_CTX_set_alpn_select_cb) X(SSL_CTX_set_cipher_list) \
  X(SSL_CTX_set_default_passwd_cb) \
  X(SSL_CTX_set_default_passwd_cb_userdata) \
  X(SSL_CTX_set_default_verify_paths) X(SSL_CTX_set_ex_data) \
  X(SSL_CTX_set_options) X(SSL_CTX_set_verify) \
  X(SSL_CTX_use_PrivateKey_file) X(SSL_CTX_use_certificate_chain_file) \
  X(SSL_ctrl) X(SSL_do_handshake) X(SSL_free) X(SSL_get0_alpn_selected) \
  X(SSL_get0_param) X(SSL_get1_peer_certificate) X(SSL_get_SSL_CTX) \
  X(SSL_get_current_cipher) X(SSL_get_error) X(SSL_get_ex_data) \
  X(SSL_get_servername) X(SSL_get_verify_result) X(SSL_get_version) \
  X(SSL_new) X(SSL_pending) X(SSL_read_ex) X(SSL_select_next_proto) \
  X(SSL_set1_host) X(SSL_set_SSL_CTX) X(SSL_set_accept_state) \
  X(SSL_set_bio) X(SSL_set_connect_state) X(SSL_set_ex_data) \
  X(SSL_set_hostflags) X(SSL_set_verify) X(SSL_shutdown) X(SSL_write_ex) \
  X(TLS_client_method) X(TLS_server_method) X(X509_NAME_ENTRY_get_data) \
  X(X509_NAME_ENTRY_get_object) X(X509_NAME_entry_count) \
  X(X509_NAME_get_entry) X(X509_STORE_add_cert) \
  X(X509_VERIFY_PARAM_set1_ip_asc) X(X509_free) X(X509_get0_notAfter) \
  X(X509_get0_notBefore) X(X509_get0_serialNumber) X(X509_get_ext_d2i) \
  X(X509_get_issuer_name) X(X509_get_subject_name) X(X509_get_version) \
  X(X509_verify_cert_error_string) X(d2i_X509_bio) X(i2d_X509)

#define TLS_DECLARE(f) extern __typeof__(f) *tlsfn_##f;
TLS_FUNCS(TLS_DECLARE)
#undef TLS_DECLARE

/* Load libssl (and libcrypto) once per process; raises if it cannot. */
void tls_load(lua_State *L);

#include "tls_renames.h"   /* #define f tlsfn_f for each f above (cmake/tls_renames.cmake) */

#endif
