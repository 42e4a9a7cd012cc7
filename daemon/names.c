#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "statefile.h"

struct name_ent {
	char name[P2P_NAME_MAX + 1];
	struct p2p_peerid id;
};

struct names {
	size_t n;
	struct name_ent e[NAMES_MAX]; /* sorted by name */
};

struct names *names_new(void)
{
	return calloc(1, sizeof(struct names));
}

void names_free(struct names *nm)
{
	free(nm);
}

/* The index of name, or where it would go (*found false). */
static size_t find(const struct names *nm, const char *name, bool *found)
{
	size_t lo = 0, hi = nm->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(nm->e[mid].name, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

int names_set(struct names *nm, const char *name, const struct p2p_peerid *id)
{
	bool found;
	size_t i;

	if (!p2p_name_valid(name, strlen(name)))
		return -EINVAL;
	i = find(nm, name, &found);
	if (!found) {
		if (nm->n == NAMES_MAX)
			return -ENOSPC;
		memmove(&nm->e[i + 1], &nm->e[i],
			(nm->n - i) * sizeof(nm->e[0]));
		nm->n++;
		snprintf(nm->e[i].name, sizeof(nm->e[i].name), "%s", name);
	}
	nm->e[i].id = *id;
	return 0;
}

int names_rm(struct names *nm, const char *name)
{
	bool found;
	size_t i = find(nm, name, &found);

	if (!found)
		return -ENOENT;
	memmove(&nm->e[i], &nm->e[i + 1], (nm->n - i - 1) * sizeof(nm->e[0]));
	nm->n--;
	return 0;
}

const struct p2p_peerid *names_get(const struct names *nm, const char *name)
{
	bool found;
	size_t i = find(nm, name, &found);

	return found ? &nm->e[i].id : NULL;
}

const char *names_of(const struct names *nm, const struct p2p_peerid *id)
{
	for (size_t i = 0; i < nm->n; i++)
		if (p2p_peerid_equal(&nm->e[i].id, id))
			return nm->e[i].name;
	return NULL;
}

size_t names_count(const struct names *nm)
{
	return nm->n;
}

const char *names_at(const struct names *nm, size_t i,
		     const struct p2p_peerid **id)
{
	*id = &nm->e[i].id;
	return nm->e[i].name;
}

int names_resolve(const struct names *nm, const char *text, size_t len,
		  struct p2p_peerid *id)
{
	char name[P2P_NAME_MAX + 1];
	const struct p2p_peerid *v;
	int r = p2p_peer_ref_parse(text, len, id, name);

	if (r < 0)
		return -EINVAL;
	if (r == P2P_REF_ID)
		return 0;
	v = names_get(nm, name);
	if (!v)
		return -ENOENT;
	*id = *v;
	return 0;
}

int names_load(struct names *nm, const char *path, char *err, size_t errlen)
{
	const char *key;
	json_t *root, *v;
	int rc;

	nm->n = 0;
	rc = statefile_read(path, &root, err, errlen);
	if (rc < 0)
		return rc;
	if (!json_is_object(root)) {
		snprintf(err, errlen, "expected an object {\"NAME\": \"ID\"}");
		json_decref(root);
		return -EPROTO;
	}
	json_object_foreach(root, key, v)
	{
		struct p2p_peerid id;
		const char *s = json_string_value(v);
		if (!s || p2p_peerid_from_text(&id, s, strlen(s)) < 0) {
			snprintf(err, errlen, "\"%.40s\": not a peer ID", key);
			rc = -EPROTO;
		} else if ((rc = names_set(nm, key, &id)) < 0) {
			snprintf(err, errlen, "\"%.40s\": %s", key,
				 rc == -ENOSPC ? "too many names"
					       : "not a valid name");
			rc = -EPROTO;
		}
		if (rc < 0)
			break;
	}
	json_decref(root);
	if (rc < 0)
		nm->n = 0;
	return rc;
}

int names_save(const struct names *nm, const char *path)
{
	json_t *root = json_object();
	char id[P2P_ID_TEXT_LEN + 1];
	int rc;

	if (!root)
		return -ENOMEM;
	for (size_t i = 0; i < nm->n; i++) {
		p2p_peerid_to_text(&nm->e[i].id, id);
		json_object_set_new(root, nm->e[i].name, json_string(id));
	}
	rc = statefile_write(path, root);
	json_decref(root);
	return rc;
}
