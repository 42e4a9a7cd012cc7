#include <errno.h>
#include <string.h>

#include "petname.h"

bool p2p_name_valid(const char *s, size_t len)
{
	if (len < 1 || len > P2P_NAME_MAX || strlen(s) != len)
		return false;
	if (s[0] < 'a' || s[0] > 'z')
		return false;
	for (size_t i = 1; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

int p2p_peer_ref_parse(const char *text, size_t len, struct p2p_peerid *id,
		       char *name)
{
	const size_t sl = sizeof(P2P_NAME_SUFFIX) - 1;
	char buf[P2P_ID_TEXT_LEN + 1];

	if (strlen(text) != len)
		return -EINVAL;
	if (len > sl && !memcmp(text + len - sl, P2P_NAME_SUFFIX, sl))
		len -= sl;
	if (len == P2P_ID_TEXT_LEN) {
		memcpy(buf, text, len);
		buf[len] = '\0';
		return p2p_peerid_from_text(id, buf, len) < 0 ? -EINVAL
							      : P2P_REF_ID;
	}
	if (len > P2P_NAME_MAX)
		return -EINVAL;
	memcpy(name, text, len);
	name[len] = '\0';
	return p2p_name_valid(name, len) ? P2P_REF_NAME : -EINVAL;
}
