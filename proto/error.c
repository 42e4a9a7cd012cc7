/* One place that turns p2p_ error codes into words for logs and users. */
#include <string.h>

#include "proto/error.h"

const char *p2p_strerror(int err)
{
	switch (-err) {
	case 0:
		return "success";
	case EPROTO:
		return "malformed protocol data";
	case EMSGSIZE:
		return "length over protocol limit";
	case EBADMSG:
		return "authentication failed (bad tag or signature)";
	case EKEYREJECTED:
		return "peer is not the expected peer ID";
	case EPROTONOSUPPORT:
		return "unsupported protocol version";
	case ENOTSUP:
		return "unknown message type";
	case EPIPE:
		return "session closed";
	case EINVAL:
		return "invalid argument";
	default:
		break;
	}
	/* strerror() wants a positive errno; accept either sign. */
	return strerror(err < 0 ? -err : err);
}
