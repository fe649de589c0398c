/* control_setup.c - the control socket opened and closed: the [control]
 * group looked up, the socket's directory made with its owner and mode, a
 * stale socket of a dead daemon cleared (a live one refused), and
 * control_set_timeout_ms.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "control_int.h"

/* ---- setup ------------------------------------------------------------- */

static int lookup_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
	struct group gr, *found = NULL;
	long size = sysconf(_SC_GETGR_R_SIZE_MAX);
	char *buf = NULL;
	int r = -1, rc;

	if (size <= 0)
		size = 16384;
	for (;;) {
		char *nbuf = realloc(buf, (size_t)size);
		if (nbuf == NULL) {
			snprintf(err, errlen, "group '%s': out of memory", name);
			goto out;
		}
		buf = nbuf;
		rc = getgrnam_r(name, &gr, buf, (size_t)size, &found);
		if (rc != ERANGE || size > (1L << 24))
			break;
		size *= 2;
	}
	if (found == NULL) {
		if (rc != 0 && rc != ENOENT && rc != ESRCH)
			snprintf(err, errlen, "cannot look up group '%s' ([control] group): %s",
				 name, strerror(rc));
		else
			snprintf(err, errlen, "unknown group '%s' ([control] group)", name);
		goto out;
	}
	*gid = gr.gr_gid;
	r = 0;
out:
	free(buf);
	return r;
}

/* Creates the socket's directory if it is missing: 0770, owned by the
 * service user and the control group, so that only they reach the socket.
 * An existing directory is left as the administrator made it (it may be
 * /run itself), with a warning when it locks the control group out. */
static int make_socket_dir(const char *path, uid_t uid, bool have_group, gid_t gid,
			   char *err, size_t errlen)
{
	char *copy = strdup(path);
	const char *dir;
	struct stat st;
	int r = -1;

	if (copy == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	dir = dirname(copy);
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "control socket directory %s is not a directory", dir);
			goto out;
		}
		if (have_group && st.st_gid != gid && (st.st_mode & S_IXOTH) == 0)
			msg_warn("control: %s belongs to gid %lu, not the control group (gid %lu): "
				 "its members cannot reach %s", dir, (unsigned long)st.st_gid,
				 (unsigned long)gid, path);
		r = 0;
		goto out;
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "control socket directory %s: %s", dir, strerror(errno));
		goto out;
	}
	if (mkdir(dir, 0700) != 0) {
		snprintf(err, errlen, "cannot create control socket directory %s: %s", dir,
			 strerror(errno));
		goto out;
	}
	/* Owner and group first, then the mode: the directory is never open
	 * to a group it was not meant for. */
	if ((uid != geteuid() || have_group) &&
	    chown(dir, uid != geteuid() ? uid : (uid_t)-1, have_group ? gid : (gid_t)-1) != 0) {
		snprintf(err, errlen, "cannot set owner of %s: %s", dir, strerror(errno));
		goto out;
	}
	if (chmod(dir, 0770) != 0) {
		snprintf(err, errlen, "cannot set mode of %s: %s", dir, strerror(errno));
		goto out;
	}
	r = 0;
out:
	free(copy);
	return r;
}

static int fill_addr(struct sockaddr_un *addr, const char *path, char *err, size_t errlen)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (path[0] == '\0' || strlen(path) >= sizeof(addr->sun_path)) {
		snprintf(err, errlen, "control socket path '%s' is empty or longer than %zu bytes",
			 path, sizeof(addr->sun_path) - 1);
		return -1;
	}
	memcpy(addr->sun_path, path, strlen(path) + 1);
	return 0;
}

/* Removes a socket file nobody listens on; refuses to touch one somebody
 * answers on, or anything that is not a socket. */
static int clear_stale_socket(const struct sockaddr_un *addr, char *err, size_t errlen)
{
	const char *path = addr->sun_path;
	struct stat st;
	int fd = -1, r = -1;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto out;
	}
	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0 ||
	    errno == EAGAIN || errno == EINPROGRESS) {
		/* EAGAIN: a listener whose backlog is full is still a listener. */
		snprintf(err, errlen, "another mongo-azure-backupd is already listening on %s",
			 path);
		goto out;
	}
	if (errno != ECONNREFUSED) {
		snprintf(err, errlen, "cannot check control socket %s: %s", path, strerror(errno));
		goto out;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale control socket %s: %s", path,
			 strerror(errno));
		goto out;
	}
	msg_info("control: removed stale socket %s", path);
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

struct control_server *control_open(const char *path, const char *group,
				    uid_t service_uid, const struct control_handlers *h,
				    char *err, size_t errlen)
{
	struct control_server *srv = NULL;
	struct sockaddr_un addr;
	struct stat st;
	mode_t old_mask;
	bool bound = false;
	int rc;

	if (fill_addr(&addr, path, err, errlen) != 0)
		goto fail;
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	srv->fd = -1;
	srv->service_uid = service_uid;
	srv->timeout_ms = CONTROL_REQUEST_TIMEOUT_MS;
	if (h != NULL)
		srv->h = *h;
	for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++)
		srv->clients[i].fd = -1;
	srv->path = strdup(path);
	srv->group = strdup(group != NULL ? group : "");
	if (srv->path == NULL || srv->group == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (srv->group[0] != '\0') {
		if (lookup_group(srv->group, &srv->gid, err, errlen) != 0)
			goto fail;
		srv->have_group = true;
	}
	if (make_socket_dir(path, service_uid, srv->have_group, srv->gid, err, errlen) != 0)
		goto fail;
	if (clear_stale_socket(&addr, err, errlen) != 0)
		goto fail;

	srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (srv->fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	/* The socket file is born 0660: no moment where others could connect. */
	old_mask = umask(0117);
	rc = bind(srv->fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old_mask);
	if (rc != 0) {
		if (errno == EADDRINUSE)
			snprintf(err, errlen, "another mongo-azure-backupd is already listening on %s",
				 path);
		else
			snprintf(err, errlen, "cannot bind control socket %s: %s", path,
				 strerror(errno));
		goto fail;
	}
	bound = true;
	if ((service_uid != geteuid() || srv->have_group) &&
	    fchownat(AT_FDCWD, path, service_uid != geteuid() ? service_uid : (uid_t)-1,
		     srv->have_group ? srv->gid : (gid_t)-1, AT_SYMLINK_NOFOLLOW) != 0) {
		snprintf(err, errlen, "cannot set owner of %s: %s", path, strerror(errno));
		goto fail;
	}
	if (lstat(path, &st) != 0) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		goto fail;
	}
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	if (listen(srv->fd, SOMAXCONN) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		goto fail;
	}
	return srv;

fail:
	if (srv != NULL) {
		if (bound && unlink(path) != 0)
			msg_debug("control: unlink %s: %s", path, strerror(errno));
		if (srv->fd >= 0)
			close(srv->fd);
		free(srv->path);
		free(srv->group);
		free(srv);
	}
	return NULL;
}

void control_set_timeout_ms(struct control_server *srv, int ms)
{
	if (srv != NULL && ms > 0)
		srv->timeout_ms = ms;
}

void control_close(struct control_server *srv)
{
	struct stat st;

	if (srv == NULL)
		return;
	for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++)
		client_close(&srv->clients[i]);
	if (close(srv->fd) != 0)
		msg_debug("control: close: %s", strerror(errno));
	/* Only our own socket: a successor may already have replaced it. */
	if (lstat(srv->path, &st) == 0 && st.st_dev == srv->dev && st.st_ino == srv->ino &&
	    unlink(srv->path) != 0)
		msg_warn("control: cannot remove %s: %s", srv->path, strerror(errno));
	free(srv->path);
	free(srv->group);
	free(srv);
}
