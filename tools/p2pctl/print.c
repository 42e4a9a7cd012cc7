/*
 * Tables and lines for people. Fields a daemon leaves out print as "-"
 * rather than failing: the JSON contract may grow, and --json is the
 * format for programs.
 */
#include <stdio.h>
#include <string.h>

#include "print.h"
#include "table.h"

#define CELL_MAX 128

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

/* Any JSON scalar as text: integers plain, reals with 2 decimals. */
static const char *scalar(json_t *v, char *buf, size_t len)
{
	if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, len, "%.2f", json_real_value(v));
	else if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, len, "%s", json_is_true(v) ? "yes" : "no");
	else
		snprintf(buf, len, "-");
	return buf;
}

/* Array of strings joined with ", " (or dflt when absent or empty). */
static const char *joined(json_t *a, const char *dflt, char *buf, size_t len)
{
	size_t i, used = 0;
	json_t *v;

	buf[0] = '\0';
	if (!json_is_array(a) || json_array_size(a) == 0)
		return dflt;
	json_array_foreach(a, i, v)
	{
		int n =
		    snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
			     json_is_string(v) ? json_string_value(v) : "?");
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	return buf;
}

/* A peer as people know it: its name when the daemon has one. */
static const char *peer_of(json_t *o, const char *idkey)
{
	const char *name = json_string_value(json_object_get(o, "name"));

	return name ? name : str(o, idkey);
}

void print_id(json_t *r)
{
	printf("%s\n", str(r, "id"));
}

void print_status(json_t *r)
{
	json_t *nat = json_object_get(r, "nat");
	json_t *dht = json_object_get(r, "dht");
	char a[1024], b[1024], n[CELL_MAX];

	printf("id:        %s\n", str(r, "id"));
	printf("version:   %s\n", str(r, "version"));
	printf("uptime:    %s s\n",
	       scalar(json_object_get(r, "uptime_s"), n, sizeof(n)));
	printf("listen:    %s\n",
	       joined(json_object_get(r, "listen"), "(none)", a, sizeof(a)));
	printf(
	    "nat:       %s (external: %s)\n", str(nat, "type"),
	    joined(json_object_get(nat, "external"), "unknown", b, sizeof(b)));
	json_t *map = json_object_get(nat, "mapping");
	if (map && strcmp(str(map, "protocol"), "none") != 0)
		printf("mapping:   %s %s, expires in %s s\n",
		       str(map, "protocol"), str(map, "external"),
		       scalar(json_object_get(map, "expires_s"), n, sizeof(n)));
	else if (map)
		printf("mapping:   none\n");
	json_t *ka = json_object_get(nat, "keepalive_ms");
	if (json_is_integer(ka))
		printf("keepalive: %.1f s%s\n",
		       (double)json_integer_value(ka) / 1000.0,
		       json_is_true(json_object_get(nat, "keepalive_learned"))
			   ? " (lowered: the NAT forgets idle links sooner)"
			   : "");
	printf("peers:     %s%s%s%s\n",
	       scalar(json_object_get(r, "peers"), n, sizeof(n)),
	       json_object_get(r, "hint") ? " (" : "",
	       json_object_get(r, "hint") ? str(r, "hint") : "",
	       json_object_get(r, "hint") ? ")" : "");
	printf("dht:       %s, table size %s\n", str(dht, "mode"),
	       scalar(json_object_get(dht, "table_size"), a, sizeof(a)));
}

/* A byte count for people: 512 B, 1.5 KiB, 3.2 MiB ... ("-" if absent). */
static const char *bytes(json_t *v, char *buf, size_t len)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
	double b;
	int u = -1;

	if (!json_is_integer(v))
		return "-";
	b = (double)json_integer_value(v);
	if (b < 1024) {
		snprintf(buf, len, "%lld B", (long long)json_integer_value(v));
		return buf;
	}
	while (b >= 1024 && u < 3) {
		b /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", b, unit[u]);
	return buf;
}

/* Seconds for people: 42s, 3m07s, 5h02m, 2d03h. */
static const char *age(json_t *v, char *buf, size_t len)
{
	long long s;

	if (!json_is_integer(v))
		return "-";
	s = json_integer_value(v);
	if (s < 60)
		snprintf(buf, len, "%llds", s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
	return buf;
}

/* The relay of a relayed link, by name when it has one. */
static const char *via(json_t *o, json_t *peers)
{
	const char *id = json_string_value(json_object_get(o, "via"));
	size_t i;
	json_t *p;

	if (!id)
		return "-";
	json_array_foreach(peers, i, p)
	{
		if (!strcmp(str(p, "id"), id) && json_object_get(p, "name"))
			return str(p, "name");
	}
	return id;
}

void print_peers(json_t *r)
{
	static const char *const hdr[] = {"ID", "ADDR", "DIR", "LINK", "RTT",
					  "IN", "OUT",	"AGE", "VIA"};
	json_t *peers = json_object_get(r, "peers");
	struct table t;
	size_t i;
	json_t *p;

	if (table_init(&t, 9, hdr) < 0)
		return;
	json_array_foreach(peers, i, p)
	{
		char rtt[CELL_MAX], in[CELL_MAX], out[CELL_MAX], a[CELL_MAX];
		json_t *v = json_object_get(p, "rtt_ms");
		const char *row[9] = {
		    peer_of(p, "id"),
		    str(p, "addr"),
		    str(p, "dir"),
		    str(p, "link"),
		    rtt,
		    bytes(json_object_get(p, "bytes_in"), in, sizeof(in)),
		    bytes(json_object_get(p, "bytes_out"), out, sizeof(out)),
		    age(json_object_get(p, "age_s"), a, sizeof(a)),
		    via(p, peers)};
		if (json_is_number(v))
			snprintf(rtt, sizeof(rtt), "%.2f ms",
				 json_number_value(v));
		else
			snprintf(rtt, sizeof(rtt), "-");
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_free(&t);
}

void print_tunnels(json_t *r)
{
	static const char *const hdr[] = {"PEER", "SERVICE", "DIR", "LINK",
					  "IN",	  "OUT",     "AGE", "STATE"};
	struct table t;
	size_t i;
	json_t *p;

	if (table_init(&t, 8, hdr) < 0)
		return;
	json_array_foreach(json_object_get(r, "tunnels"), i, p)
	{
		char in[CELL_MAX], out[CELL_MAX], a[CELL_MAX], st[CELL_MAX];
		const char *w = str(p, "waiting");
		const char *row[8] = {
		    peer_of(p, "peer"),
		    str(p, "service"),
		    str(p, "dir"),
		    str(p, "link"),
		    bytes(json_object_get(p, "bytes_in"), in, sizeof(in)),
		    bytes(json_object_get(p, "bytes_out"), out, sizeof(out)),
		    age(json_object_get(p, "age_s"), a, sizeof(a)),
		    st};

		/* Why its bytes do not move: its link is full, or the
		 * peer's reader is behind (its window is spent). */
		snprintf(st, sizeof(st), "%s%s", str(p, "state"),
			 !strcmp(w, "link")	? " (link full)"
			 : !strcmp(w, "window") ? " (peer's window)"
						: "");
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_free(&t);
}

void print_metrics(json_t *r)
{
	fputs(str(r, "text"), stdout);
}

void print_lookup(json_t *r)
{
	static const char *const hdr[] = {"ID", "ADDR"};
	struct table t;
	size_t i;
	json_t *p;

	printf("found: %s\n",
	       json_is_true(json_object_get(r, "found")) ? "yes" : "no");
	if (table_init(&t, 2, hdr) < 0)
		return;
	json_array_foreach(json_object_get(r, "closest"), i, p)
	{
		const char *row[2] = {str(p, "id"), str(p, "addr")};
		table_add(&t, row);
	}
	printf("closest:\n");
	table_print(&t, stdout);
	table_free(&t);
}

/* "ID: direct link (punch) in 412.3 ms over IPv6"; no family from an
 * older daemon: nothing said. */
void print_connect(json_t *r)
{
	char ms[CELL_MAX];
	json_int_t fam = json_integer_value(json_object_get(r, "family"));

	printf("%s: %s link (%s) in %s ms%s\n", str(r, "peer"), str(r, "path"),
	       str(r, "method"),
	       scalar(json_object_get(r, "ms"), ms, sizeof(ms)),
	       fam == 6	  ? " over IPv6"
	       : fam == 4 ? " over IPv4"
			  : "");
}

/* "rtt 0.412 ms via direct (overlay link)", "... via relay (relayed link
 * through ID)", "... via relay (routed through the overlay)". */
void print_ping(json_t *r)
{
	json_t *v = json_object_get(r, "rtt_ms");
	const char *link = json_string_value(json_object_get(r, "link"));
	char how[160];

	if (!link)
		how[0] = '\0';
	else if (!strcmp(link, "routed"))
		snprintf(how, sizeof(how), " (routed through the overlay)");
	else if (!strcmp(link, "relay"))
		snprintf(how, sizeof(how), " (relayed link through %s)",
			 json_object_get(r, "via_name") ? str(r, "via_name")
							: str(r, "via"));
	else
		snprintf(how, sizeof(how), " (%s link)", link);
	printf("rtt %.3f ms via %s%s\n", json_number_value(v), str(r, "path"),
	       how);
}

void print_bootstrap(json_t *r)
{
	printf("joined through %s\n", str(r, "peer"));
}

void print_expose(json_t *r)
{
	printf("exposed\n");
}

void print_unexpose(json_t *r)
{
	printf("unexposed\n");
}

void print_services(json_t *r)
{
	static const char *const hdr[] = {"SERVICE", "TARGET", "ALLOW"};
	struct table t;
	size_t i;
	json_t *s;

	if (table_init(&t, 3, hdr) < 0)
		return;
	json_array_foreach(json_object_get(r, "services"), i, s)
	{
		char allow[4096];
		json_t *a = json_object_get(s, "allow");
		/* "any" (or null from an older daemon): every peer, said
		 * loudly; an empty list: nobody */
		const char *row[3] = {
		    str(s, "service"), str(s, "target"),
		    json_is_array(a) ? joined(a, "none", allow, sizeof(allow))
				     : "ANY PEER (--allow-any)"};
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_free(&t);
}

void print_forward(json_t *r)
{
	printf("listening on %s\n", str(r, "listen"));
}

void print_unforward(json_t *r)
{
	printf("forward removed\n");
}

void print_forwards(json_t *r)
{
	static const char *const hdr[] = {"LISTEN", "PEER", "SERVICE"};
	struct table t;
	size_t i;
	json_t *f;

	if (table_init(&t, 3, hdr) < 0)
		return;
	json_array_foreach(json_object_get(r, "forwards"), i, f)
	{
		const char *row[3] = {str(f, "listen"), peer_of(f, "peer"),
				      str(f, "service")};
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_free(&t);
}

void print_names(json_t *r)
{
	static const char *const hdr[] = {"NAME", "ID"};
	struct table t;
	size_t i;
	json_t *e;

	if (table_init(&t, 2, hdr) < 0)
		return;
	json_array_foreach(json_object_get(r, "names"), i, e)
	{
		const char *row[2] = {str(e, "name"), str(e, "peer")};
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_free(&t);
}
