/* pidfile.c - create, lock and write the pid file. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "pidfile.h"
#include "xio.h"

int pidfile_write(int fd)
{
	char text[32];
	int len = snprintf(text, sizeof(text), "%ld\n", (long)getpid());

	if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0 ||
	    xwrite_all(fd, text, (size_t)len) != 0)
		return -1;
	return 0;
}

int pidfile_acquire(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);

	if (fd < 0) {
		snprintf(err, errlen, "cannot open pid file %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		char text[32] = "";
		ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
		long pid = n > 0 ? strtol(text, NULL, 10) : 0;
		if (errno == EWOULDBLOCK && pid > 0)
			snprintf(err, errlen, "mongo-azure-backupd is already running (pid %ld, "
				 "pid file %s)", pid, path);
		else if (errno == EWOULDBLOCK)
			snprintf(err, errlen, "mongo-azure-backupd is already running (pid file "
				 "%s is locked)", path);
		else
			snprintf(err, errlen, "cannot lock pid file %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (pidfile_write(fd) != 0) {
		snprintf(err, errlen, "cannot write pid file %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void pidfile_release(int fd, const char *path)
{
	if (fd < 0)
		return;
	/* Unlink while still holding the lock, so no new daemon's file is
	 * removed by mistake. */
	unlink(path);
	close(fd);
}
