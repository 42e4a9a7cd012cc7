#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/petname.h"

static int parse(const char *s, char *name)
{
	struct p2p_peerid id;

	return p2p_peer_ref_parse(s, strlen(s), &id, name);
}

Test(petname, valid_names)
{
	cr_assert(p2p_name_valid("a", 1));
	cr_assert(p2p_name_valid("alice-2", 7));
	cr_assert(p2p_name_valid("a234567890123456789012345678901z", 32));
	cr_assert(!p2p_name_valid("", 0));
	cr_assert(!p2p_name_valid("2alice", 6));
	cr_assert(!p2p_name_valid("-a", 2));
	cr_assert(!p2p_name_valid("Alice", 5));
	cr_assert(!p2p_name_valid("al.ice", 6));
	cr_assert(!p2p_name_valid("al ice", 6));
	cr_assert(!p2p_name_valid("a2345678901234567890123456789012z", 33));
}

Test(petname, refs)
{
	char name[P2P_NAME_MAX + 1], id52[53], buf[80];
	struct p2p_peerid id, want;

	memset(id52, 'a', 52);
	id52[52] = '\0';
	cr_assert_eq(p2p_peerid_from_text(&want, id52, 52), 0);
	cr_assert_eq(p2p_peer_ref_parse(id52, 52, &id, name), P2P_REF_ID);
	cr_assert(p2p_peerid_equal(&id, &want));
	snprintf(buf, sizeof(buf), "%s.p2p", id52);
	cr_assert_eq(p2p_peer_ref_parse(buf, strlen(buf), &id, name),
		     P2P_REF_ID);
	cr_assert_eq(parse("alice", name), P2P_REF_NAME);
	cr_assert_str_eq(name, "alice");
	cr_assert_eq(parse("alice.p2p", name), P2P_REF_NAME);
	cr_assert_str_eq(name, "alice");
	cr_assert_eq(parse("p2p", name), P2P_REF_NAME);
	cr_assert_eq(parse(".p2p", name), -EINVAL);
	cr_assert_eq(parse("alice.p2p.p2p", name), -EINVAL);
	cr_assert_eq(parse("", name), -EINVAL);
	cr_assert_eq(parse("Alice", name), -EINVAL);
	cr_assert_eq(parse("alice.com", name), -EINVAL);
	memset(buf, 'a', 52);
	buf[51] = 'b'; /* unused low bits set: not an ID, too long a name */
	buf[52] = '\0';
	cr_assert_eq(parse(buf, name), -EINVAL);
	cr_assert_eq(p2p_peer_ref_parse("ab", 1, &id, name), -EINVAL);
}
