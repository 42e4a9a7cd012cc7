/*
 * Control requests: parse a line, dispatch by "cmd", build the one reply.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "control_int.h"

#define CTL_MESSAGE_MAX 512

struct ctl_req *ctl_req_new(struct ctl_client *c, json_t *tag)
{
	struct ctl_req *req = malloc(sizeof(*req));

	if (req == NULL)
		return NULL;
	req->client = c;
	req->tag = json_incref(tag);
	return req;
}

/* Send obj (stolen) with the tag, free req, go on with the next line. */
static void req_finish(struct ctl_req *req, json_t *obj)
{
	struct ctl_client *c = req->client;

	if (c != NULL && obj != NULL) {
		if (req->tag != NULL)
			json_object_set(obj, "tag", req->tag);
		ctl_client_send(c, obj);
	} else if (c != NULL) {
		ctl_client_close(c); /* out of memory: no reply to give */
	}
	json_decref(obj);
	json_decref(req->tag);
	free(req);
	if (c != NULL && c->pending == req)
		ctl_client_request_done(c);
}

static json_t *ok_object(json_t *fields)
{
	json_t *o = json_object();
	const char *key;
	json_t *v;

	if (o == NULL || json_object_set_new(o, "ok", json_true()) < 0) {
		json_decref(o);
		return NULL;
	}
	if (json_is_object(fields)) {
		json_object_foreach(fields, key, v)
		{
			if (strcmp(key, "ok") != 0 && strcmp(key, "tag") != 0)
				json_object_set(o, key, v);
		}
	}
	json_decref(fields);
	return o;
}

void ctl_reply_ok(struct ctl_req *req, json_t *fields)
{
	req_finish(req, ok_object(fields));
}

/* A message cut inside a UTF-8 sequence is trimmed back to a whole one. */
static json_t *message_string(const char *msg)
{
	size_t len = strlen(msg);
	json_t *s = NULL;

	for (int i = 0; i < 4 && s == NULL && len > 0; i++, len--)
		s = json_stringn(msg, len);
	return s != NULL ? s : json_string("(unprintable message)");
}

void ctl_reply_error(struct ctl_req *req, const char *code, const char *fmt,
		     ...)
{
	char msg[CTL_MESSAGE_MAX];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_pack("{s:b, s:s, s:o}", "ok", 0, "error", code, "message",
		      message_string(msg));
	req_finish(req, o);
}

void ctl_req_progress(struct ctl_req *req, const char *stage,
		      const char *detail)
{
	struct ctl_client *c = req->client;
	json_t *o;

	if (c == NULL || c->closing || c->shutting_down)
		return;
	o = json_pack("{s:s, s:o}", "progress", stage, "detail",
		      message_string(detail));
	if (o == NULL)
		return;
	if (req->tag != NULL)
		json_object_set(o, "tag", req->tag);
	ctl_client_send(c, o);
	json_decref(o);
}

int ctl_req_orphaned(const struct ctl_req *req)
{
	return req->client == NULL;
}

uv_stream_t *ctl_req_take_stream(struct ctl_req *req, json_t *fields,
				 char **rest, size_t *restlen)
{
	struct ctl_client *c = req->client;
	size_t n;
	json_t *o;

	*rest = NULL;
	*restlen = 0;
	if (c == NULL || c->closing || c->shutting_down) {
		json_decref(fields);
		json_decref(req->tag);
		free(req);
		return NULL;
	}
	o = ok_object(fields);
	if (o != NULL && req->tag != NULL)
		json_object_set(o, "tag", req->tag);
	json_decref(req->tag);
	free(req);
	c->pending = NULL;
	if (o == NULL) {
		ctl_client_close(c);
		return NULL;
	}
	ctl_client_send(c, o);
	json_decref(o);
	n = c->inlen - c->inoff;
	if (!c->closing && n > 0) {
		*rest = malloc(n);
		if (*rest == NULL)
			ctl_client_close(c);
		else
			memcpy(*rest, c->in + c->inoff, n);
	}
	if (c->closing)
		return NULL;
	*restlen = n;
	return ctl_client_detach(c);
}

static const struct ctl_command *find_cmd(const struct ctl_server *s,
					  const char *name)
{
	for (size_t i = 0; i < s->ncmds; i++)
		if (strcmp(s->cmds[i].name, name) == 0)
			return &s->cmds[i];
	return NULL;
}

static int blank(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t')
			return 0;
	return 1;
}

void ctl_dispatch_line(struct ctl_client *c, const char *line, size_t len)
{
	const struct ctl_command *cmd;
	struct ctl_req *req;
	json_error_t je;
	json_t *o, *name;

	if (blank(line, len))
		return;
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	req = ctl_req_new(c,
			  json_is_object(o) ? json_object_get(o, "tag") : NULL);
	if (req == NULL) {
		json_decref(o);
		ctl_client_close(c);
		return;
	}
	c->pending = req;
	name = json_object_get(o, "cmd");
	if (o == NULL)
		ctl_reply_error(req, "bad_request",
				"invalid JSON at column %d: %s", je.column,
				je.text);
	else if (!json_is_object(o))
		ctl_reply_error(req, "bad_request",
				"a request is a JSON object");
	else if (!json_is_string(name))
		ctl_reply_error(req, "bad_request",
				"the request has no \"cmd\" string");
	else if ((cmd = find_cmd(c->srv, json_string_value(name))) == NULL)
		ctl_reply_error(req, "unknown_command",
				"unknown command \"%.64s\"",
				json_string_value(name));
	else
		cmd->fn(c->srv->ctx, req, o);
	json_decref(o);
}
