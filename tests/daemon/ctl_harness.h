/*
 * Test harness for the control server: a libuv loop run in small steps by
 * the test thread, and clients that are plain non-blocking sockets.
 */
#ifndef P2PD_TEST_CTL_HARNESS_H
#define P2PD_TEST_CTL_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "daemon/control.h"

#define TC_RX_CAP (4 * 1024 * 1024)

struct tc_client {
	int fd;
	bool eof; /* read returned 0 or a reset */
	size_t len;
	char *rx;
};

extern uv_loop_t tc_loop;
extern char tc_dir[64];
extern char tc_path[108];

/* Fresh loop and temp dir; tc_path is a socket path inside the dir. */
void tc_setup(void);
/* Run the loop until nothing is left, assert it closes, clean the dir. */
void tc_teardown(void);

/* One non-blocking turn of the loop. */
void tc_pump(void);
/* Turn the loop for ms milliseconds. */
void tc_pump_for(int ms);

/* Connect to path (tc_path when NULL); pumps so the server accepts. */
struct tc_client *tc_connect(const char *path);
void tc_free(struct tc_client *c);
/* Send everything (pumping while the socket is full); -errno on error. */
int tc_send(struct tc_client *c, const void *buf, size_t len);
int tc_send_str(struct tc_client *c, const char *s);
/* Next reply line parsed, or NULL after 3 s / EOF. */
json_t *tc_reply(struct tc_client *c);
/* Raw: wait until at least n bytes are buffered (or EOF/timeout). */
bool tc_wait_bytes(struct tc_client *c, size_t n);
/* Read until EOF (true) or 3 s pass (false). */
bool tc_wait_eof(struct tc_client *c);
/* Drop the first n bytes of rx. */
void tc_consume(struct tc_client *c, size_t n);

/* Short cuts for replies. */
bool tc_is_ok(json_t *r);
const char *tc_error(json_t *r);

#endif
