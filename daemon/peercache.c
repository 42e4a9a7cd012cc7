#include "peercache.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "statefile.h"

void peercache_init(struct peercache *pc)
{
	memset(pc, 0, sizeof(*pc));
}

static bool exempt(const struct p2p_addr *a)
{
	static const uint8_t v6lo[16] = {[15] = 1};

	if (a->family == 4)
		return a->ip[0] == 127 && a->ip[1] == 0 && a->ip[2] == 0;
	return a->family == 6 && memcmp(a->ip, v6lo, 16) == 0;
}

static bool subnet_full(const struct peercache *pc, const struct p2p_addr *a)
{
	size_t same = 0;

	for (size_t i = 0; i < pc->n && !exempt(a); i++)
		same += p2p_addr_subnet(&pc->e[i].addr) == p2p_addr_subnet(a);
	return same >= PEERCACHE_SUBNET_MAX;
}

/* The entry to give up for a new one of addr's subnet, or PEERCACHE_MAX
 * for none (room left): the least seen, the oldest of those. */
static size_t victim(const struct peercache *pc, const struct p2p_addr *addr)
{
	uint64_t net = p2p_addr_subnet(addr);
	size_t same = 0, v = PEERCACHE_MAX, vs = PEERCACHE_MAX;

	for (size_t i = pc->n; i-- > 0;) {
		if (exempt(addr) || p2p_addr_subnet(&pc->e[i].addr) != net)
			continue;
		same++;
		if (vs == PEERCACHE_MAX || pc->seen[i] < pc->seen[vs])
			vs = i;
	}
	if (same >= PEERCACHE_SUBNET_MAX)
		return vs;
	if (pc->n < PEERCACHE_MAX)
		return PEERCACHE_MAX;
	for (size_t i = pc->n; i-- > 0;)
		if (v == PEERCACHE_MAX || pc->seen[i] < pc->seen[v])
			v = i;
	return v;
}

void peercache_add(struct peercache *pc, const struct p2p_peerid *id,
		   const struct p2p_addr *addr)
{
	uint32_t seen = 1;
	size_t i;

	for (i = 0; i < pc->n; i++)
		if (p2p_peerid_equal(&pc->e[i].id, id))
			break;
	if (i == 0 && pc->n > 0 && p2p_addr_equal(&pc->e[0].addr, addr))
		return; /* already newest and unchanged */
	if (i < pc->n) {
		seen = pc->seen[i] < PEERCACHE_SEEN_MAX ? pc->seen[i] + 1
							: pc->seen[i];
	} else if ((i = victim(pc, addr)) == PEERCACHE_MAX) {
		i = pc->n++; /* a new slot */
	}
	memmove(&pc->e[1], &pc->e[0], i * sizeof(pc->e[0]));
	memmove(&pc->seen[1], &pc->seen[0], i * sizeof(pc->seen[0]));
	pc->e[0].id = *id;
	pc->e[0].addr = *addr;
	pc->seen[0] = seen;
	pc->dirty = true;
}

static int parse_entry(json_t *v, struct p2p_contact *c, uint32_t *seen,
		       size_t idx, char *err, size_t errlen)
{
	json_t *id = json_object_get(v, "id");
	json_t *addr = json_object_get(v, "addr");
	json_t *sn = json_object_get(v, "seen");

	if (!json_is_object(v) || !json_is_string(id) ||
	    !json_is_string(addr)) {
		snprintf(err, errlen,
			 "entry %zu: expected {\"id\": ..., \"addr\": ...}",
			 idx);
		return -EPROTO;
	}
	if (p2p_peerid_from_text(&c->id, json_string_value(id),
				 json_string_length(id)) < 0) {
		snprintf(err, errlen, "entry %zu: invalid peer ID", idx);
		return -EPROTO;
	}
	if (p2p_addr_parse(&c->addr, json_string_value(addr), false) < 0 ||
	    c->addr.port == 0) {
		snprintf(err, errlen, "entry %zu: invalid address", idx);
		return -EPROTO;
	}
	if (sn && (!json_is_integer(sn) || json_integer_value(sn) < 1)) {
		snprintf(err, errlen, "entry %zu: invalid seen count", idx);
		return -EPROTO;
	}
	*seen = !sn ? 1
		: json_integer_value(sn) > PEERCACHE_SEEN_MAX
		    ? PEERCACHE_SEEN_MAX
		    : (uint32_t)json_integer_value(sn);
	return 0;
}

int peercache_parse(struct peercache *pc, const char *text, size_t len,
		    char *err, size_t errlen)
{
	json_error_t je;
	json_t *root, *v;
	size_t i;
	int rc = 0;

	peercache_init(pc);
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		snprintf(err, errlen, "line %d: %s", je.line, je.text);
		return -EPROTO;
	}
	if (!json_is_array(root)) {
		snprintf(err, errlen, "expected a JSON array");
		json_decref(root);
		return -EPROTO;
	}
	json_array_foreach(root, i, v)
	{
		struct p2p_contact c;
		if (pc->n == PEERCACHE_MAX)
			break; /* keep the newest; the rest is history */
		rc = parse_entry(v, &c, &pc->seen[pc->n], i, err, errlen);
		if (rc < 0)
			break;
		if (subnet_full(pc, &c.addr))
			continue; /* diversity holds for old files too */
		pc->e[pc->n++] = c;
	}
	json_decref(root);
	if (rc < 0)
		peercache_init(pc);
	return rc;
}

int peercache_load(struct peercache *pc, const char *path, char *err,
		   size_t errlen)
{
	char *buf;
	size_t len;
	int rc;

	peercache_init(pc);
	rc = statefile_load_text(path, PEERCACHE_FILE_MAX, &buf, &len, err,
				 errlen);
	if (rc < 0)
		return rc;
	rc = peercache_parse(pc, buf, len, err, errlen);
	free(buf);
	return rc;
}

char *peercache_dump(const struct peercache *pc)
{
	json_t *root = json_array();
	char id[P2P_ID_TEXT_LEN + 1], addr[P2P_ADDR_TEXT_MAX];
	char *out;

	if (!root)
		return NULL;
	for (size_t i = 0; i < pc->n; i++) {
		p2p_peerid_to_text(&pc->e[i].id, id);
		p2p_addr_format(&pc->e[i].addr, addr, sizeof(addr));
		json_array_append_new(root, json_pack("{s:s, s:s, s:I}", "id",
						      id, "addr", addr, "seen",
						      (json_int_t)pc->seen[i]));
	}
	out = json_dumps(root, JSON_INDENT(1));
	json_decref(root);
	return out;
}

int peercache_save(struct peercache *pc, const char *path)
{
	char *text = peercache_dump(pc);
	int rc;

	if (!text)
		return -ENOMEM;
	rc = statefile_save_text(path, text);
	free(text);
	if (rc == 0)
		pc->dirty = false;
	return rc;
}
