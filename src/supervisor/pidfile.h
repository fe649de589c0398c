/* pidfile.h - the daemon's pid file, held under an exclusive flock for the
 * daemon's lifetime, so a second daemon on the same file refuses to start. */
#ifndef MAB_PIDFILE_H
#define MAB_PIDFILE_H

#include <stddef.h>

/* Returns the locked fd, or -1 with a message (naming the running pid when
 * another daemon holds the lock). */
int pidfile_acquire(const char *path, char *err, size_t errlen);
/* Rewrites the pid (after a fork moved the daemon to a new process). */
int pidfile_write(int fd);
void pidfile_release(int fd, const char *path);

#endif
