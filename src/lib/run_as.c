/* run_as.c - look up [daemon] user once; switch a child to it. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "run_as.h"

int run_as_resolve(const char *user, struct run_as *ra, char *err, size_t errlen)
{
	struct passwd *pw;
	int n = RUN_AS_MAX_GROUPS;

	memset(ra, 0, sizeof(*ra));
	if (user == NULL || *user == '\0')
		return 0;
	errno = 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(err, errlen, "[daemon] user '%s' does not exist%s%s", user,
			 errno ? ": " : "", errno ? strerror(errno) : "");
		return -1;
	}
	if (pw->pw_uid == geteuid() && pw->pw_gid == getegid())
		return 0;	/* already that user: nothing to switch */
	if (geteuid() != 0) {
		snprintf(err, errlen, "cannot run children as user '%s': the daemon was not "
			 "started as root", user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen, "[daemon] user '%s' is root: name an unprivileged user, "
			 "or leave it empty", user);
		return -1;
	}
	if (getgrouplist(pw->pw_name, pw->pw_gid, ra->groups, &n) < 0) {
		snprintf(err, errlen, "user '%s' is in more than %d groups", user,
			 RUN_AS_MAX_GROUPS);
		return -1;
	}
	snprintf(ra->name, sizeof(ra->name), "%s", pw->pw_name);
	ra->uid = pw->pw_uid;
	ra->gid = pw->pw_gid;
	ra->n_groups = n;
	ra->active = true;
	return 0;
}

int run_as_apply(const struct run_as *ra)
{
	if (ra == NULL || !ra->active)
		return 0;
	if (setgroups((size_t)ra->n_groups, ra->groups) != 0 || setgid(ra->gid) != 0 ||
	    setuid(ra->uid) != 0)
		return -1;
	/* setuid() from root sets all three uids; prove it. */
	if (setuid(0) == 0 || getuid() != ra->uid || geteuid() != ra->uid) {
		errno = EPERM;
		return -1;
	}
	return 0;
}
