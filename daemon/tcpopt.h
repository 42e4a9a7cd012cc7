/*
 * Options for TCP sockets whose hop never leaves this host: links and
 * tunnel targets dialled on loopback, forward and link listeners bound to
 * loopback (their accepted sockets inherit what the listener has).
 *
 * Such a socket gets a congestion control that does not pace: cubic, or
 * reno where the host lets unprivileged sockets choose only that and its
 * default (net.ipv4.tcp_allowed_congestion_control).
 *
 * Why: a host set up with BBR (net.ipv4.tcp_congestion_control=bbr, as
 * many cloud images are) paces every TCP socket, and loopback has no
 * qdisc, so the kernel paces on its own with an hrtimer per burst
 * (tcp_pace_kick). At tunnel speeds that is about 8,000 timer interrupts
 * a second on the sending daemon's CPU, landing in the middle of sealing
 * and opening records: libsodium's AES-256-GCM took 0.74 instead of 0.52
 * CPU s/GiB in a read-seal-write loop on the bench VM (README, "Tunnel
 * throughput"). A hop inside the host has no bottleneck for BBR to model
 * and loses nothing, so cubic or reno costs nothing there. The choice
 * has to be made before the connection is established: BBR's init marks
 * the socket as needing pacing and no later change of algorithm clears
 * it. Sockets to other hosts keep the host's choice.
 */
#ifndef P2PD_TCPOPT_H
#define P2PD_TCPOPT_H

#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
bool tcpopt_is_loopback(const struct sockaddr *sa);

/* On fd, not yet connected nor listening: cubic, else reno. The name
 * set, or NULL when the host allows neither (its choice stays). */
const char *tcpopt_in_host(int fd);

/* Before uv_tcp_connect(tcp, dst): when dst is loopback, tcp gets its
 * socket now if it has none and tcpopt_in_host() on it. Best effort: on
 * any failure tcp is left as it was and the connect goes on. */
void tcpopt_before_connect(uv_tcp_t *tcp, const struct sockaddr *dst);

/* Before uv_listen(tcp), once bound: the same when its address is
 * loopback, so that every accepted socket inherits it. */
void tcpopt_before_listen(uv_tcp_t *tcp);

#endif
