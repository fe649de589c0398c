/* xio.h - full reads and writes, and small fd helpers.
 *
 * Every read and write in the project goes through these: they retry EINTR
 * and short counts, so callers only see "all of it", EOF, or an error.
 */
#ifndef MAB_XIO_H
#define MAB_XIO_H

#include <stddef.h>
#include <sys/types.h>

/* Writes all of buf; returns 0, or -1 with errno set (EPIPE included). */
int xwrite_all(int fd, const void *buf, size_t len);
/* Reads until len bytes or EOF; returns bytes read (< len only at EOF) or -1. */
ssize_t xread_full(int fd, void *buf, size_t len);
int fd_set_nonblock(int fd, int on);
int fd_set_cloexec(int fd, int on);
/* Moves fd to target (dup2 unless equal) without CLOEXEC; -1 on error. */
int fd_move_to(int fd, int target);

#endif
