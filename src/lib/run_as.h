/* run_as.h - the identity the daemon's children run under.
 *
 * The supervisor stays root, so it can read the configuration and the
 * secret files (root-only, 0600) and re-read them on reload; everything it
 * starts (the helpers that talk to MongoDB and Azure, the hooks) runs as
 * [daemon] user.  The user's groups are looked up once, before any fork,
 * because nothing between fork and exec may use NSS or malloc.
 */
#ifndef MAB_RUN_AS_H
#define MAB_RUN_AS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define RUN_AS_MAX_GROUPS 64

struct run_as {
	bool active;              /* false: children keep the supervisor's identity */
	uid_t uid;
	gid_t gid;
	int n_groups;
	gid_t groups[RUN_AS_MAX_GROUPS];
	char name[64];
};

/* user "" leaves ra inactive.  -1 with err when the user does not exist,
 * or when switching to it needs root and we are not root. */
int run_as_resolve(const char *user, struct run_as *ra, char *err, size_t errlen);
/* Between fork and exec: groups, gid, uid, and a check that root cannot be
 * regained.  0, or -1 with errno.  An inactive ra is a no-op. */
int run_as_apply(const struct run_as *ra);

#endif
