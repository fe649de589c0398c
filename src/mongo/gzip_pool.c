/* gzip_pool.c - ordered parallel gzip members (see gzip_pool.h).
 *
 * Slots form a ring indexed by member sequence number.  The caller fills
 * slot next_fill, the workers take next_take onwards, the caller writes
 * next_write onwards; next_write <= next_take <= next_fill, and a slot is
 * reused only after it was written.  With zero threads (one-thread
 * engines without streaming, such as libdeflate) the caller compresses
 * each member itself and no thread is started.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gzip_member.h"
#include "gzip_pool.h"
#include "xio.h"

#define WORKER_STACK (1024 * 1024)

enum slot_state { SLOT_FREE, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE, SLOT_FAILED };

struct slot {
	unsigned char *in, *out;
	size_t in_len, out_len;
	enum slot_state state;
};

struct gzip_pool {
	int fd;
	size_t member_size, out_cap;
	int nslots, nthreads, started;
	struct slot *slots;
	struct gzip_member_compressor *mcs;   /* one per thread, or one inline */
	pthread_t *tids;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	bool sync_ready;
	bool stopping;
	uint64_t next_fill, next_take, next_write;
	uint64_t bytes_out;
};

struct worker_arg {
	struct gzip_pool *p;
	int index;
};

static struct slot *slot_of(struct gzip_pool *p, uint64_t seq)
{
	return &p->slots[seq % (uint64_t)p->nslots];
}

static void compress_slot(struct gzip_member_compressor *mc, struct gzip_pool *p,
			  struct slot *s, bool *ok)
{
	*ok = gzip_member_compress(mc, s->in, s->in_len, s->out, p->out_cap, &s->out_len) == 0;
}

static void *worker(void *arg)
{
	struct gzip_pool *p = ((struct worker_arg *)arg)->p;
	struct gzip_member_compressor *mc = &p->mcs[((struct worker_arg *)arg)->index];

	free(arg);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stopping && p->next_take == p->next_fill)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->stopping)
			break;
		struct slot *s = slot_of(p, p->next_take++);
		s->state = SLOT_BUSY;
		pthread_mutex_unlock(&p->mu);
		bool ok;
		compress_slot(mc, p, s, &ok);
		pthread_mutex_lock(&p->mu);
		s->state = ok ? SLOT_DONE : SLOT_FAILED;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void stop_workers(struct gzip_pool *p)
{
	if (!p->sync_ready)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->started; i++)
		pthread_join(p->tids[i], NULL);
	p->started = 0;
}

struct gzip_pool *gzip_pool_new(int fd, enum gzip_engine engine, int level, int threads,
				size_t member_size)
{
	struct gzip_pool *p = calloc(1, sizeof(*p));
	int n_mc, err = ENOMEM;

	if (p == NULL)
		goto fail;
	p->fd = fd;
	p->member_size = member_size;
	p->nthreads = threads > 1 ? threads : 0;
	/* Two members a thread: one being compressed while the other waits
	 * to be written. */
	p->nslots = p->nthreads > 0 ? 2 * p->nthreads : 1;
	n_mc = p->nthreads > 0 ? p->nthreads : 1;
	p->mcs = calloc((size_t)n_mc, sizeof(*p->mcs));
	p->slots = calloc((size_t)p->nslots, sizeof(*p->slots));
	p->tids = calloc((size_t)(n_mc), sizeof(*p->tids));
	if (p->mcs == NULL || p->slots == NULL || p->tids == NULL)
		goto fail;
	for (int i = 0; i < n_mc; i++) {
		if (gzip_member_init(&p->mcs[i], engine, level) != 0) {
			err = errno;
			goto fail;
		}
	}
	p->out_cap = gzip_member_bound(&p->mcs[0], member_size);
	for (int i = 0; i < p->nslots; i++) {
		p->slots[i].in = malloc(member_size);
		p->slots[i].out = malloc(p->out_cap);
		if (p->slots[i].in == NULL || p->slots[i].out == NULL)
			goto fail;
	}
	if (pthread_mutex_init(&p->mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&p->work, NULL) != 0) {
		pthread_mutex_destroy(&p->mu);
		goto fail;
	}
	if (pthread_cond_init(&p->done, NULL) != 0) {
		pthread_cond_destroy(&p->work);
		pthread_mutex_destroy(&p->mu);
		goto fail;
	}
	p->sync_ready = true;
	/* The default 8 MiB stacks would count against [limits] child_memory
	 * (RLIMIT_AS) for nothing: the engines keep their state on the heap. */
	pthread_attr_t attr;
	if ((err = pthread_attr_init(&attr)) != 0)
		goto fail;
	err = pthread_attr_setstacksize(&attr, WORKER_STACK);
	for (int i = 0; err == 0 && i < p->nthreads; i++) {
		struct worker_arg *a = malloc(sizeof(*a));
		if (a == NULL) {
			err = ENOMEM;
			break;
		}
		a->p = p;
		a->index = i;
		err = pthread_create(&p->tids[i], &attr, worker, a);
		if (err != 0) {
			free(a);
			break;
		}
		p->started++;
	}
	pthread_attr_destroy(&attr);
	if (err != 0)
		goto fail;
	return p;
fail:
	gzip_pool_free(p);
	errno = err;
	return NULL;
}

/* Writes the oldest member out (waiting for it when wait is set).
 * 1 when one was written, 0 when none was ready, -1 on failure. */
static int write_oldest(struct gzip_pool *p, bool wait)
{
	struct slot *s;

	if (p->next_write == p->next_fill)
		return 0;
	s = slot_of(p, p->next_write);
	enum slot_state st = s->state;
	if (p->nthreads > 0) {
		pthread_mutex_lock(&p->mu);
		while (wait && (s->state == SLOT_QUEUED || s->state == SLOT_BUSY))
			pthread_cond_wait(&p->done, &p->mu);
		st = s->state;
		pthread_mutex_unlock(&p->mu);
		if (st == SLOT_QUEUED || st == SLOT_BUSY)
			return 0;
	}
	if (st == SLOT_FAILED) {
		errno = EIO;
		return -1;
	}
	if (xwrite_all(p->fd, s->out, s->out_len) != 0)
		return -1;
	p->bytes_out += s->out_len;
	s->in_len = s->out_len = 0;
	s->state = SLOT_FREE;
	p->next_write++;
	return 1;
}

/* Hands the slot being filled over for compression. */
static int submit(struct gzip_pool *p)
{
	struct slot *s = slot_of(p, p->next_fill);

	if (p->nthreads == 0) {
		bool ok;
		compress_slot(&p->mcs[0], p, s, &ok);
		s->state = ok ? SLOT_DONE : SLOT_FAILED;
		p->next_fill++;
		return write_oldest(p, true) < 0 ? -1 : 0;
	}
	pthread_mutex_lock(&p->mu);
	s->state = SLOT_QUEUED;
	p->next_fill++;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
	/* Whatever is finished goes out now, so the upload never waits for
	 * the whole ring; the next slot must be free before it is filled. */
	int rc;
	while ((rc = write_oldest(p, false)) == 1)
		;
	if (rc < 0)
		return -1;
	if (p->next_fill - p->next_write == (uint64_t)p->nslots && write_oldest(p, true) < 0)
		return -1;
	return 0;
}

int gzip_pool_write(struct gzip_pool *p, const void *data, size_t len)
{
	const unsigned char *src = data;

	while (len > 0) {
		struct slot *s = slot_of(p, p->next_fill);
		size_t take = p->member_size - s->in_len;
		if (take > len)
			take = len;
		memcpy(s->in + s->in_len, src, take);
		s->in_len += take;
		src += take;
		len -= take;
		if (s->in_len == p->member_size && submit(p) != 0)
			return -1;
	}
	return 0;
}

int gzip_pool_finish(struct gzip_pool *p)
{
	if ((slot_of(p, p->next_fill)->in_len > 0 || p->next_fill == 0) && submit(p) != 0)
		return -1;
	while (p->next_write < p->next_fill)
		if (write_oldest(p, true) < 0)
			return -1;
	return 0;
}

uint64_t gzip_pool_bytes_out(const struct gzip_pool *p)
{
	return p->bytes_out;
}

uint64_t gzip_pool_members(const struct gzip_pool *p)
{
	return p->next_write;
}

void gzip_pool_free(struct gzip_pool *p)
{
	if (p == NULL)
		return;
	stop_workers(p);
	if (p->sync_ready) {
		pthread_cond_destroy(&p->done);
		pthread_cond_destroy(&p->work);
		pthread_mutex_destroy(&p->mu);
	}
	if (p->slots != NULL) {
		for (int i = 0; i < p->nslots; i++) {
			free(p->slots[i].in);
			free(p->slots[i].out);
		}
	}
	if (p->mcs != NULL) {
		int n_mc = p->nthreads > 0 ? p->nthreads : 1;
		for (int i = 0; i < n_mc; i++)
			gzip_member_free(&p->mcs[i]);
	}
	free(p->slots);
	free(p->mcs);
	free(p->tids);
	free(p);
}
