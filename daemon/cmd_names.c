/*
 * Petname commands (SPEC section 9): name_add, name_rm, names. Every
 * change is written to STATE_DIR/names.json before the answer; a failed
 * write undoes the change and says why.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd_node.h"
#include "log.h"
#include "names.h"

static void names_path(const struct p2pd_node *n, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", n->state_dir, NAMES_FILE);
}

static const char *arg_name(struct ctl_req *req, json_t *args)
{
	json_t *v = json_object_get(args, "name");

	if (!json_is_string(v) ||
	    !p2p_name_valid(json_string_value(v), json_string_length(v))) {
		ctl_reply_error(req, "bad_request",
				"name: expected 1 to %d of a-z 0-9 -, starting "
				"with a letter",
				P2P_NAME_MAX);
		return NULL;
	}
	return json_string_value(v);
}

/* Save, or put the table back as it was (had: the old ID, or NULL). */
static int save_or_undo(struct p2pd_node *n, struct ctl_req *req,
			const char *name, const struct p2p_peerid *had)
{
	char path[PATH_MAX + 16];
	int rc;

	names_path(n, path, sizeof(path));
	rc = names_save(n->names, path);
	if (rc == 0)
		return 0;
	if (had)
		names_set(n->names, name, had);
	else
		names_rm(n->names, name);
	ctl_reply_error(req, "internal", "cannot write %s: %s", path,
			strerror(-rc));
	return rc;
}

static void cmd_name_add(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	const char *name = arg_name(req, args);
	json_t *v = json_object_get(args, "peer");
	const struct p2p_peerid *old;
	struct p2p_peerid id, had;
	int rc;

	if (!name)
		return;
	if (!json_is_string(v) ||
	    p2p_peerid_from_text(&id, json_string_value(v),
				 json_string_length(v)) < 0) {
		ctl_reply_error(req, "invalid_peer_id",
				"peer: not a peer ID (52 base32 characters)");
		return;
	}
	old = names_get(n->names, name);
	if (old)
		had = *old;
	rc = names_set(n->names, name, &id);
	if (rc < 0) {
		ctl_reply_error(req, "busy", "already %d names", NAMES_MAX);
		return;
	}
	if (save_or_undo(n, req, name, old ? &had : NULL) < 0)
		return;
	log_info("name %s is %s%s", name, json_string_value(v),
		 old ? " (changed)" : "");
	ctl_reply_ok(req, NULL);
}

static void cmd_name_rm(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	const char *name = arg_name(req, args);
	const struct p2p_peerid *old;
	struct p2p_peerid had;

	if (!name)
		return;
	old = names_get(n->names, name);
	if (!old) {
		ctl_reply_error(req, "bad_request", "no name '%s'", name);
		return;
	}
	had = *old;
	names_rm(n->names, name);
	if (save_or_undo(n, req, name, &had) < 0)
		return;
	log_info("name %s removed", name);
	ctl_reply_ok(req, NULL);
}

static void cmd_names(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	json_t *arr = json_array();
	char t[P2P_ID_TEXT_LEN + 1];

	for (size_t i = 0; i < names_count(n->names); i++) {
		const struct p2p_peerid *id;
		const char *name = names_at(n->names, i, &id);
		p2p_peerid_to_text(id, t);
		json_array_append_new(
		    arr, json_pack("{s:s, s:s}", "name", name, "peer", t));
	}
	ctl_reply_ok(req, json_pack("{s:o}", "names", arr));
}

const struct ctl_command cmd_names_commands[] = {
    {"name_add", cmd_name_add},
    {"name_rm", cmd_name_rm},
    {"names", cmd_names},
};
const size_t cmd_names_ncommands =
    sizeof(cmd_names_commands) / sizeof(cmd_names_commands[0]);
