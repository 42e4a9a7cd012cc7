/* Human output of each command's success reply (stdout). */
#ifndef P2PCTL_PRINT_H
#define P2PCTL_PRINT_H

#include <jansson.h>

void print_id(json_t *r);
void print_status(json_t *r);
void print_peers(json_t *r);
void print_lookup(json_t *r);
void print_connect(json_t *r);
void print_ping(json_t *r);
void print_bootstrap(json_t *r);
void print_expose(json_t *r);
void print_unexpose(json_t *r);
void print_services(json_t *r);
void print_forward(json_t *r);
void print_unforward(json_t *r);
void print_forwards(json_t *r);
void print_names(json_t *r);
void print_tunnels(json_t *r);
void print_metrics(json_t *r);

#endif
