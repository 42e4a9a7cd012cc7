#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "daemon/nodeutil.h"

static struct p2p_peerid mkid(uint8_t b)
{
	struct p2p_peerid id;
	memset(id.b, b, sizeof(id.b));
	return id;
}

static struct p2p_addr A(const char *text) {
	struct p2p_addr a;
	cr_assert_eq(p2p_addr_parse(&a, text, false), 0, "%s", text);
	return a;
}

/* ---- duplicate links ---- */

Test(dup, lower_initiator_wins)
{
	struct p2p_peerid lo = mkid(1), hi = mkid(2);

	/* We are lo: our outbound link (initiator lo) is kept. */
	cr_assert(node_dup_keep_new(&lo, &hi, false, true));
	cr_assert(!node_dup_keep_new(&lo, &hi, true, false));
	/* We are hi: the peer's link (inbound to us, initiator lo) is kept. */
	cr_assert(node_dup_keep_new(&hi, &lo, true, false));
	cr_assert(!node_dup_keep_new(&hi, &lo, false, true));
}

Test(dup, same_direction_keeps_older)
{
	struct p2p_peerid a = mkid(1), b = mkid(2);

	cr_assert(!node_dup_keep_new(&a, &b, true, true));
	cr_assert(!node_dup_keep_new(&a, &b, false, false));
	cr_assert(!node_dup_keep_new(&b, &a, true, true));
}

Test(dup, both_ends_agree)
{
	/* Link X: A dialled B. Link Y: B dialled A. Each end sees them in
	 * either order; both must keep the same physical link. */
	struct p2p_peerid ids[2] = {mkid(0x10), mkid(0x80)};
	for (int k = 0; k < 2; k++) {
		struct p2p_peerid *a = &ids[k], *b = &ids[1 - k];
		/* At A: X is outbound, Y inbound. At B: X inbound, Y outbound.
		 */
		bool a_keeps_y = node_dup_keep_new(a, b, true, false);
		bool b_keeps_y = node_dup_keep_new(b, a, false, true);
		cr_assert_eq(a_keeps_y, b_keeps_y);
		/* Order of arrival does not matter either. */
		bool a_keeps_x = node_dup_keep_new(a, b, false, true);
		cr_assert_neq(a_keeps_x, a_keeps_y);
	}
}

/* ---- HELLO dial address ---- */

Test(hello, wildcard_gets_remote_ip)
{
	struct p2p_addr adv[2] = {A("0.0.0.0:4242"), A("[::]:4243")};
	struct p2p_addr remote = A("192.0.2.7:55555"), out;

	cr_assert_eq(node_hello_dial_addr(adv, 2, &remote, &out), 0);
	cr_assert(p2p_addr_equal(&out, &(struct p2p_addr){0}) == false);
	struct p2p_addr want = A("192.0.2.7:4242");
	cr_assert(p2p_addr_equal(&out, &want));

	struct p2p_addr r6 = A("[2001:db8::5]:1000");
	cr_assert_eq(node_hello_dial_addr(adv, 2, &r6, &out), 0);
	want = A("[2001:db8::5]:4243");
	cr_assert(p2p_addr_equal(&out, &want));
}

Test(hello, same_ip_preferred)
{
	struct p2p_addr adv[3] = {A("10.0.0.1:1"), A("0.0.0.0:2"),
				  A("198.51.100.9:3")};
	struct p2p_addr remote = A("198.51.100.9:7777"), out;

	cr_assert_eq(node_hello_dial_addr(adv, 3, &remote, &out), 0);
	struct p2p_addr want = A("198.51.100.9:3");
	cr_assert(p2p_addr_equal(&out, &want));
	/* Behind NAT: wildcard beats a private address of the same family. */
	struct p2p_addr nat = A("203.0.113.1:40000");
	cr_assert_eq(node_hello_dial_addr(adv, 2, &nat, &out), 0);
	want = A("203.0.113.1:2");
	cr_assert(p2p_addr_equal(&out, &want));
}

Test(hello, nothing_usable)
{
	struct p2p_addr adv[2] = {A("[::]:5"), {.family = 4, .port = 0}};
	struct p2p_addr remote = A("192.0.2.1:9"), out;

	cr_assert_eq(node_hello_dial_addr(adv, 2, &remote, &out), -ENOENT);
	cr_assert_eq(node_hello_dial_addr(adv, 0, &remote, &out), -ENOENT);
	/* Another family with a real IP is better than nothing. */
	struct p2p_addr v6 = A("[2001:db8::1]:5");
	cr_assert_eq(node_hello_dial_addr(&v6, 1, &remote, &out), 0);
	cr_assert(p2p_addr_equal(&out, &v6));
}

/* ---- sockaddr ---- */

Test(sockaddr, roundtrip_and_v4mapped)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct p2p_addr a = A("[2001:db8::2]:80"), b;

	cr_assert_eq(node_addr_to_sockaddr(&a, &ss, &len), 0);
	cr_assert_eq(len, sizeof(struct sockaddr_in6));
	cr_assert_eq(node_addr_from_sockaddr(&b, (struct sockaddr *)&ss), 0);
	cr_assert(p2p_addr_equal(&a, &b));

	struct sockaddr_in6 m = {.sin6_family = AF_INET6,
				 .sin6_port = htons(9)};
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &m.sin6_addr);
	cr_assert_eq(node_addr_from_sockaddr(&b, (struct sockaddr *)&m), 0);
	struct p2p_addr want = A("127.0.0.1:9");
	cr_assert(p2p_addr_equal(&b, &want));

	struct p2p_addr none = {0};
	cr_assert_eq(node_addr_to_sockaddr(&none, &ss, &len), -EINVAL);
	cr_assert(node_addr_is_unspec(&(struct p2p_addr){.family = 6}));
	cr_assert(!node_addr_is_unspec(&want));
}

/* ---- service arguments ---- */

Test(service, names_and_targets)
{
	cr_assert(node_service_name_ok("ssh"));
	cr_assert(node_service_name_ok("my-web_1.x"));
	cr_assert(!node_service_name_ok(""));
	cr_assert(!node_service_name_ok("a b"));
	cr_assert(!node_service_name_ok("a/b"));
	char big[80];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	cr_assert(!node_service_name_ok(big));

	cr_assert(node_target_ok("127.0.0.1:22"));
	cr_assert(node_target_ok("[::1]:8080"));
	cr_assert(node_target_ok("localhost:80"));
	cr_assert(!node_target_ok("localhost"));
	cr_assert(!node_target_ok("127.0.0.1:0"));
	cr_assert(!node_target_ok("127.0.0.1:65536"));
	cr_assert(!node_target_ok("host:12x"));
	cr_assert(!node_target_ok(":22"));
	cr_assert(!node_target_ok("bad host:22"));
}

static int from(const char *json, struct p2pd_service *svc, char *msg)
{
	json_error_t je;
	json_t *args = json_loads(json, 0, &je);
	cr_assert_not_null(args, "%s", je.text);
	int rc = node_service_from_args(args, svc, msg, 256);
	json_decref(args);
	return rc;
}

Test(service, from_args)
{
	struct p2pd_service svc;
	char msg[256], id[P2P_ID_TEXT_LEN + 1], json[512];
	struct p2p_peerid x = mkid(0x33);

	p2p_peerid_to_text(&x, id);
	/* who may use it is never implicit (SPEC section 9) */
	cr_assert_eq(
	    from("{\"service\": \"ssh\", \"target\": \"127.0.0.1:22\"}", &svc,
		 msg),
	    -EINVAL);
	cr_assert(strstr(msg, "allow"), "%s", msg);
	cr_assert_eq(from("{\"service\": \"ssh\", \"target\": "
			  "\"127.0.0.1:22\", \"allow\": \"any\"}",
			  &svc, msg),
		     0, "%s", msg);
	cr_assert_str_eq(svc.name, "ssh");
	cr_assert(svc.allow_any);
	cr_assert_eq(svc.target_addr.port, 22);
	{
		json_t *j = node_service_to_json(&svc);
		cr_assert_str_eq(json_string_value(json_object_get(j, "allow")),
				 "any");
		json_decref(j);
	}

	snprintf(json, sizeof(json),
		 "{\"service\": \"web\", \"target\": \"localhost:80\", "
		 "\"allow\": [\"%s\"]}",
		 id);
	cr_assert_eq(from(json, &svc, msg), 0, "%s", msg);
	cr_assert(!svc.allow_any);
	cr_assert_eq(svc.nallow, 1);
	cr_assert(p2p_peerid_equal(&svc.allow[0], &x));
	cr_assert_eq(svc.target_addr.family, 0, "names are not resolved here");

	json_t *j = node_service_to_json(&svc);
	cr_assert_str_eq(json_string_value(json_object_get(j, "service")),
			 "web");
	cr_assert_str_eq(
	    json_string_value(json_array_get(json_object_get(j, "allow"), 0)),
	    id);
	json_decref(j);

	cr_assert_eq(
	    from("{\"service\": 5, \"target\": \"127.0.0.1:22\"}", &svc, msg),
	    -EINVAL);
	cr_assert(strstr(msg, "service"));
	cr_assert_eq(from("{\"service\": \"ssh\"}", &svc, msg), -EINVAL);
	cr_assert(strstr(msg, "target"));
	cr_assert_eq(
	    from("{\"service\": \"ssh\", \"target\": \"x\"}", &svc, msg),
	    -EINVAL);
	cr_assert_eq(from("{\"service\": \"ssh\", \"target\": \"1.2.3.4:5\", "
			  "\"allow\": \"x\"}",
			  &svc, msg),
		     -EINVAL);
	cr_assert(strstr(msg, "allow"));
	cr_assert_eq(from("{\"service\": \"ssh\", \"target\": \"1.2.3.4:5\", "
			  "\"allow\": [\"nope\"]}",
			  &svc, msg),
		     -EBADR);
	cr_assert_eq(from("{\"service\": \"ssh\", \"target\": \"1.2.3.4:5\", "
			  "\"allow\": [7]}",
			  &svc, msg),
		     -EINVAL);
	cr_assert_eq(from("{\"service\": \"ssh\", \"target\": \"1.2.3.4:5\", "
			  "\"allow\": null}",
			  &svc, msg),
		     -EINVAL);
	cr_assert_eq(from("{\"service\": \"ssh\", \"target\": \"1.2.3.4:5\", "
			  "\"allow\": []}",
			  &svc, msg),
		     0);
	cr_assert(!svc.allow_any, "an empty list is nobody, not everybody");
	cr_assert_eq(svc.nallow, 0);
}
