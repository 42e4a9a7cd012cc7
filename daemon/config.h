/*
 * p2pd configuration: command line (SPEC section 3) over the JSON config
 * file (section 6). Flags override the file.
 */
#ifndef P2PD_CONFIG_H
#define P2PD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "proto/addr.h"
#include "proto/peerid.h"

#define P2PD_DEFAULT_PORT 4242
#define P2PD_MAX_LISTEN 8
#define P2PD_MAX_BOOTSTRAP 32
#define P2PD_MAX_SERVICES 64
#define P2PD_MAX_ALLOW 64
#define P2PD_GROUP_NAME_MAX 64 /* control_group, with its NUL */
#define P2PD_MAX_FORWARDS 64
#define P2PD_PEER_REF_MAX 64 /* an ID or a name, maybe with ".p2p" */

struct p2pd_service {
	char name[64];
	char target[256];	     /* "HOST:PORT" as given */
	struct p2p_addr target_addr; /* resolved when numeric, else family 0 */
	bool allow_any;		     /* no "allow" list */
	size_t nallow;
	struct p2p_peerid allow[P2PD_MAX_ALLOW];
	bool runtime; /* made by expose: kept in STATE_DIR/runtime.json */
};

/* A forward of the config file; the peer (ID or name) is resolved when
 * the node starts, when names are known. */
struct p2pd_forward {
	struct p2p_addr listen;
	char peer[P2PD_PEER_REF_MAX];
	char service[P2P_SERVICE_NAME_MAX + 1];
};

struct p2pd_limits {
	unsigned max_links;	  /* overlay + direct links */
	unsigned max_ctl_clients; /* control connections */
	unsigned handshake_timeout_ms;
	unsigned keepalive_ms;	      /* below common NAT timeouts */
	unsigned idle_timeout_ms;     /* link considered dead without traffic */
	unsigned ctl_idle_timeout_ms; /* idle control client closed */
};

struct p2pd_config {
	char config_path[PATH_MAX]; /* "" when none */
	size_t nlisten;
	struct p2p_addr listen[P2PD_MAX_LISTEN];
	size_t nbootstrap;
	struct p2p_addr bootstrap[P2PD_MAX_BOOTSTRAP];
	/* "HOST:PORT" bootstrap entries, every address tried (SPEC 9). */
	size_t nbootstrap_names;
	char bootstrap_names[P2PD_MAX_BOOTSTRAP][P2P_HOST_NAME_MAX + 8];
	char control[108]; /* sun_path */
	/* its members may use the control socket; "" for none */
	char control_group[P2PD_GROUP_NAME_MAX];
	char state_dir[PATH_MAX];
	int log_level; /* LOG_LVL_* */
	size_t nservices;
	struct p2pd_service services[P2PD_MAX_SERVICES];
	size_t nforwards;
	struct p2pd_forward forwards[P2PD_MAX_FORWARDS];
	struct p2pd_limits limits;
	/* multicast beacons on the LAN (SPEC 9); false: no socket at all */
	bool lan_discovery;
	/* Ask the gateway for a mapping of the listen port (PCP, NAT-PMP);
	 * false: not one packet to the gateway (SPEC section 9). */
	bool port_mapping;
	/* Lower the keepalive when links through our NAT are reset after
	 * quiet spells (core/keepalive.h); false: limits.keepalive_ms only. */
	bool keepalive_adapt;
	/* A DHT server answers a hole punch request "dial me" (no priming,
	 * no session; nat/punch.h P2P_PUNCH_F_DIALABLE); false: it punches
	 * as any node does (a listener some networks cannot reach). */
	bool dial_me;
	bool check_only; /* -n: check config and exit */
	bool show_id;	 /* --show-id: print the state dir's ID, exit */
};

/*
 * Fill c from defaults, then the config file (-c), then flags. Returns 0
 * to run, 1 when --help/--version was printed (exit 0), or -EINVAL with a
 * one-line message naming the problem in err.
 */
int p2pd_config_load(struct p2pd_config *c, int argc, char **argv, char *err,
		     size_t errlen);

/*
 * Refuse a state directory that another user could write into: it must
 * be a directory (a symbolic link to one is fine) owned by the effective
 * uid and not writable by group or others. 0, or -ENOTDIR/-EPERM/-errno
 * with a one-line message naming the directory in err.
 */
int p2pd_state_dir_check(const char *dir, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Re-read only the services of the config file (SIGHUP). 0 or -errno. */
int p2pd_config_reload_services(struct p2pd_config *c, char *err,
				size_t errlen);

#endif
