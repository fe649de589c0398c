/* block_upload.c - the streaming Put Block engine.
 *
 * One thread, one loop: curl_multi_poll() waits on the transfers, the input
 * fd (only while there is room to read into) and the watch fd.  Reading
 * never blocks (a readable pipe returns what it has), so the input keeps
 * flowing while blocks upload, and stops - pushing back on the producer -
 * only when every allowed slot holds a block that Azure has not yet taken.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "block_upload.h"
#include "child_status.h"
#include "log.h"

/* One read() takes at most this much, so transfers get serviced often. */
#define READ_CHUNK (1024 * 1024)

enum slot_state { SLOT_FREE, SLOT_ACTIVE, SLOT_WAIT };

struct slot {
	enum slot_state state;
	unsigned char *buf;
	size_t cap;
	size_t len;
	uint64_t index;
	char id[AZURE_BLOCK_ID_SIZE];
	char md5[AZURE_MD5_B64_SIZE];
	struct azure_request req;
	CURL *easy;
	int64_t retry_at_ms;
};

struct block_upload {
	struct azure_client *client;
	char *blob;
	struct block_upload_opts opts;
	uint64_t nonce;
	CURLM *multi;
	struct slot *slots;
	int n_slots;
	int in_flight;

	unsigned char *fill;          /* the block being read into */
	size_t fill_cap;
	size_t fill_len;
	bool eof;

	EVP_MD_CTX *md5_all, *sha_all, *md5_block;
	struct block_upload_stats stats;
	int64_t last_progress_ms;
	uint64_t reported_staged;
	bool reported_any;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t block_upload_block_size(uint64_t initial, uint64_t index)
{
	uint64_t shift = index / BLOCK_UPLOAD_GROWTH_BLOCKS, size = initial;

	if (size == 0)
		size = 1;
	if (size > AZURE_MAX_BLOCK_SIZE)
		return AZURE_MAX_BLOCK_SIZE;
	for (uint64_t i = 0; i < shift && size < AZURE_MAX_BLOCK_SIZE; i++)
		size *= 2;
	return size > AZURE_MAX_BLOCK_SIZE ? AZURE_MAX_BLOCK_SIZE : size;
}

int block_upload_max_inflight(int concurrency, uint64_t initial, uint64_t current)
{
	uint64_t budget = (uint64_t)(concurrency > 0 ? concurrency : 1) * (initial ? initial : 1);
	uint64_t n = current ? budget / current : budget;

	if (n < 1)
		return 1;
	return n > (uint64_t)concurrency ? concurrency : (int)n;
}

struct block_upload *block_upload_new(struct azure_client *client, const char *blob,
				      const struct block_upload_opts *opts)
{
	struct block_upload *up = calloc(1, sizeof(*up));

	if (up == NULL)
		return NULL;
	up->client = client;
	up->opts = *opts;
	if (up->opts.concurrency < 1)
		up->opts.concurrency = 1;
	if (up->opts.block_size < 1)
		up->opts.block_size = 1;
	if (up->opts.block_size > AZURE_MAX_BLOCK_SIZE)
		up->opts.block_size = AZURE_MAX_BLOCK_SIZE;
	if (up->opts.progress_ms <= 0)
		up->opts.progress_ms = 250;
	up->nonce = azure_rng_next(&client->rng);
	up->n_slots = up->opts.concurrency;
	up->blob = strdup(blob);
	up->slots = calloc((size_t)up->n_slots, sizeof(*up->slots));
	up->multi = curl_multi_init();
	up->md5_all = EVP_MD_CTX_new();
	up->sha_all = EVP_MD_CTX_new();
	up->md5_block = EVP_MD_CTX_new();
	if (up->blob == NULL || up->slots == NULL || up->multi == NULL ||
	    up->md5_all == NULL || up->sha_all == NULL || up->md5_block == NULL)
		goto fail;
	for (int i = 0; i < up->n_slots; i++) {
		up->slots[i].easy = curl_easy_init();
		if (up->slots[i].easy == NULL)
			goto fail;
	}
	if (EVP_DigestInit_ex(up->md5_all, EVP_md5(), NULL) != 1 ||
	    EVP_DigestInit_ex(up->sha_all, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestInit_ex(up->md5_block, EVP_md5(), NULL) != 1)
		goto fail;
	/* Idle connections beyond the slots would only hold sockets open. */
	curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, (long)up->n_slots + 1);
	return up;
fail:
	block_upload_free(up);
	return NULL;
}

void block_upload_free(struct block_upload *up)
{
	if (up == NULL)
		return;
	for (int i = 0; up->slots != NULL && i < up->n_slots; i++) {
		struct slot *s = &up->slots[i];
		if (s->state == SLOT_ACTIVE)
			curl_multi_remove_handle(up->multi, s->easy);
		if (s->state != SLOT_FREE)
			azure_request_cleanup(&s->req);
		if (s->easy != NULL)
			curl_easy_cleanup(s->easy);
		free(s->buf);
	}
	if (up->multi != NULL)
		curl_multi_cleanup(up->multi);
	EVP_MD_CTX_free(up->md5_all);
	EVP_MD_CTX_free(up->sha_all);
	EVP_MD_CTX_free(up->md5_block);
	free(up->slots);
	free(up->fill);
	free(up->blob);
	free(up);
}

const struct block_upload_stats *block_upload_stats(const struct block_upload *up)
{
	return &up->stats;
}

static int digest_b64(EVP_MD_CTX *ctx, char out[AZURE_MD5_B64_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (EVP_DigestFinal_ex(ctx, md, &len) != 1 || len != 16)
		return -1;
	azure_b64_encode(md, len, out);
	return 0;
}

static struct slot *free_slot(struct block_upload *up)
{
	uint64_t size = block_upload_block_size(up->opts.block_size, up->stats.blocks);
	int allowed = block_upload_max_inflight(up->opts.concurrency, up->opts.block_size, size);

	if (up->in_flight >= allowed)
		return NULL;
	for (int i = 0; i < up->n_slots; i++)
		if (up->slots[i].state == SLOT_FREE)
			return &up->slots[i];
	return NULL;
}

static int start_attempt(struct block_upload *up, struct slot *s, struct azure_error *err)
{
	CURLMcode mc;

	if (azure_request_setup(&s->req, s->easy, err) != 0)
		return -1;
	mc = curl_multi_add_handle(up->multi, s->easy);
	if (mc != CURLM_OK) {
		azure_error_local(err, 0, "Put Block '%s': %s", up->blob, curl_multi_strerror(mc));
		return -1;
	}
	s->state = SLOT_ACTIVE;
	return 0;
}

/* Hands the filled block to a free slot; the slot's old buffer becomes the
 * next fill buffer when it has the right size. */
static int submit_block(struct block_upload *up, struct slot *s, struct azure_error *err)
{
	unsigned char *spare = s->buf;
	size_t spare_cap = s->cap;

	if (digest_b64(up->md5_block, s->md5) != 0 ||
	    EVP_DigestInit_ex(up->md5_block, EVP_md5(), NULL) != 1) {
		azure_error_local(err, 0, "Put Block '%s': MD5 failed", up->blob);
		return -1;
	}
	s->buf = up->fill;
	s->cap = up->fill_cap;
	s->len = up->fill_len;
	s->index = up->stats.blocks;
	azure_block_id(up->nonce, s->index, s->id);
	up->fill = spare;
	up->fill_cap = spare_cap;
	up->fill_len = 0;
	up->stats.blocks++;

	if (azure_put_block_request(&s->req, up->client, up->blob, s->id, s->buf, s->len,
				    s->md5) != 0) {
		azure_error_local(err, ENOMEM, "Put Block '%s': out of memory", up->blob);
		return -1;
	}
	s->req.user = s;
	up->in_flight++;
	return start_attempt(up, s, err);
}

/* Makes sure the fill buffer is the size the next block must have. */
static int ensure_fill(struct block_upload *up, struct azure_error *err)
{
	uint64_t want = block_upload_block_size(up->opts.block_size, up->stats.blocks);

	if (up->fill != NULL && up->fill_cap == want)
		return 0;
	free(up->fill);
	up->fill_cap = 0;
	if (want > SIZE_MAX || (up->fill = malloc((size_t)want)) == NULL) {
		azure_error_local(err, ENOMEM, "Put Block '%s': cannot allocate a %" PRIu64
				  " MiB block buffer", up->blob, want >> 20);
		return -1;
	}
	up->fill_cap = (size_t)want;
	/* Slots keep their buffers for reuse; drop those of the old size. */
	for (int i = 0; i < up->n_slots; i++) {
		struct slot *s = &up->slots[i];
		if (s->state == SLOT_FREE && s->buf != NULL && s->cap != want) {
			free(s->buf);
			s->buf = NULL;
			s->cap = 0;
		}
	}
	return 0;
}

static int read_input(struct block_upload *up, int fd, struct azure_error *err)
{
	size_t room = up->fill_cap - up->fill_len;
	ssize_t n;

	if (room > READ_CHUNK)
		room = READ_CHUNK;
	n = read(fd, up->fill + up->fill_len, room);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		azure_error_local(err, errno, "reading the input: %s", strerror(errno));
		return -1;
	}
	if (n == 0) {
		up->eof = true;
		return 0;
	}
	if (EVP_DigestUpdate(up->md5_all, up->fill + up->fill_len, (size_t)n) != 1 ||
	    EVP_DigestUpdate(up->sha_all, up->fill + up->fill_len, (size_t)n) != 1 ||
	    EVP_DigestUpdate(up->md5_block, up->fill + up->fill_len, (size_t)n) != 1) {
		azure_error_local(err, 0, "hashing the input failed");
		return -1;
	}
	up->fill_len += (size_t)n;
	up->stats.bytes_read += (uint64_t)n;
	return 0;
}

static int collect_done(struct block_upload *up, struct azure_error *err)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(up->multi, &left)) != NULL) {
		struct azure_request *req = NULL;
		struct slot *s;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
		CURLcode result = msg->data.result;
		s = req->user;
		curl_multi_remove_handle(up->multi, s->easy);
		switch (azure_request_finish(req, result, err)) {
		case AZURE_DONE:
			up->stats.bytes_staged += s->len;
			up->stats.blocks_staged++;
			azure_request_cleanup(&s->req);
			s->state = SLOT_FREE;
			s->len = 0;
			up->in_flight--;
			break;
		case AZURE_RETRY:
			up->stats.retries++;
			s->state = SLOT_WAIT;
			s->retry_at_ms = now_ms() + req->next_delay_ms;
			break;
		case AZURE_FAILED:
			return -1;
		}
	}
	return 0;
}

static int start_due_retries(struct block_upload *up, int64_t now, long *timeout,
			     struct azure_error *err)
{
	for (int i = 0; i < up->n_slots; i++) {
		struct slot *s = &up->slots[i];
		if (s->state != SLOT_WAIT)
			continue;
		if (s->retry_at_ms <= now) {
			if (start_attempt(up, s, err) != 0)
				return -1;
		} else if (s->retry_at_ms - now < *timeout) {
			*timeout = (long)(s->retry_at_ms - now);
		}
	}
	return 0;
}

static void report_progress(struct block_upload *up, int64_t now, bool force)
{
	if (up->opts.progress == NULL)
		return;
	if (!force && now - up->last_progress_ms < up->opts.progress_ms)
		return;
	/* The final report only when it says something new. */
	if (force && up->reported_staged == up->stats.bytes_staged && up->reported_any)
		return;
	up->last_progress_ms = now;
	up->reported_staged = up->stats.bytes_staged;
	up->reported_any = true;
	up->opts.progress(up->opts.progress_ctx, &up->stats);
}

int block_upload_stage(struct block_upload *up, int in_fd, struct azure_error *err)
{
	int64_t started = now_ms();
	int rc = -1;

	memset(err, 0, sizeof(*err));
	up->last_progress_ms = started;
	for (;;) {
		struct curl_waitfd fds[2];
		unsigned nfds = 0;
		int in_idx = -1, watch_idx = -1, running;
		long timeout = 1000;
		int64_t now;

		if (!up->eof && ensure_fill(up, err) != 0)
			goto out;
		/* A full block, or the last partial one, goes out when a slot
		 * is allowed; otherwise reading pauses (back-pressure). */
		while (up->fill_len > 0 && (up->fill_len == up->fill_cap || up->eof)) {
			struct slot *s = free_slot(up);
			if (s == NULL)
				break;
			if (submit_block(up, s, err) != 0)
				goto out;
			if (!up->eof && ensure_fill(up, err) != 0)
				goto out;
		}
		if (up->eof && up->fill_len == 0 && up->in_flight == 0)
			break;

		now = now_ms();
		if (start_due_retries(up, now, &timeout, err) != 0)
			goto out;
		if (!up->eof && up->fill_len < up->fill_cap) {
			fds[nfds] = (struct curl_waitfd){ .fd = in_fd, .events = CURL_WAIT_POLLIN };
			in_idx = (int)nfds++;
		}
		if (up->opts.watch_fd >= 0 && up->opts.watch != NULL) {
			fds[nfds] = (struct curl_waitfd){ .fd = up->opts.watch_fd,
							  .events = CURL_WAIT_POLLIN };
			watch_idx = (int)nfds++;
		}
		if (up->opts.progress != NULL && up->opts.progress_ms < timeout)
			timeout = up->opts.progress_ms;

		CURLMcode mc = curl_multi_poll(up->multi, fds, nfds, (int)timeout, NULL);
		if (mc == CURLM_OK)
			mc = curl_multi_perform(up->multi, &running);
		if (mc != CURLM_OK) {
			azure_error_local(err, 0, "Put Block '%s': %s", up->blob,
					  curl_multi_strerror(mc));
			goto out;
		}
		if (collect_done(up, err) != 0)
			goto out;
		if (watch_idx >= 0 && fds[watch_idx].revents != 0 &&
		    up->opts.watch(up->opts.watch_ctx) != 0) {
			rc = BLOCK_UPLOAD_ABORTED;
			goto out;
		}
		if (in_idx >= 0 && fds[in_idx].revents != 0 && read_input(up, in_fd, err) != 0)
			goto out;
		report_progress(up, now_ms(), false);
	}

	if (digest_b64(up->md5_all, up->stats.md5_b64) != 0) {
		azure_error_local(err, 0, "MD5 failed");
		goto out;
	}
	unsigned char sha[EVP_MAX_MD_SIZE];
	unsigned int sha_len = 0;
	if (EVP_DigestFinal_ex(up->sha_all, sha, &sha_len) != 1 || sha_len != 32) {
		azure_error_local(err, 0, "SHA-256 failed");
		goto out;
	}
	for (unsigned i = 0; i < sha_len; i++)
		snprintf(up->stats.sha256_hex + 2 * i, 3, "%02x", sha[i]);
	rc = 0;
out:
	up->stats.seconds = (double)(now_ms() - started) / 1000.0;
	if (rc == 0)
		report_progress(up, now_ms(), true);
	/* Transfers still running belong to a failed or abandoned upload. */
	for (int i = 0; rc != 0 && i < up->n_slots; i++) {
		struct slot *s = &up->slots[i];
		if (s->state == SLOT_ACTIVE)
			curl_multi_remove_handle(up->multi, s->easy);
		if (s->state != SLOT_FREE)
			azure_request_cleanup(&s->req);
		s->state = SLOT_FREE;
	}
	if (rc != 0)
		up->in_flight = 0;
	return rc;
}

int block_upload_commit(struct block_upload *up, const struct azure_put_opts *opts,
			struct azure_error *err)
{
	uint64_t n = up->stats.blocks;
	struct azure_put_opts o = opts ? *opts : (struct azure_put_opts){ 0 };
	char (*ids)[AZURE_BLOCK_ID_SIZE] = NULL;
	const char **ptrs = NULL;
	int rc = -1;

	if (up->stats.blocks_staged != n || !*up->stats.md5_b64) {
		azure_error_local(err, EINVAL, "Put Block List '%s': not every block is staged",
				  up->blob);
		return -1;
	}
	if (n > AZURE_MAX_BLOCKS) {
		azure_error_local(err, EFBIG, "Put Block List '%s': %" PRIu64 " blocks is more "
				  "than Azure's %d", up->blob, n, AZURE_MAX_BLOCKS);
		err->err_class = ERR_CLASS_CLIENT;
		return -1;
	}
	ids = calloc(n ? (size_t)n : 1, sizeof(*ids));
	ptrs = calloc(n ? (size_t)n : 1, sizeof(*ptrs));
	if (ids == NULL || ptrs == NULL) {
		azure_error_local(err, ENOMEM, "Put Block List '%s': out of memory", up->blob);
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		azure_block_id(up->nonce, i, ids[i]);
		ptrs[i] = ids[i];
	}
	if (o.content_md5 == NULL)
		o.content_md5 = up->stats.md5_b64;
	rc = azure_put_block_list(up->client, up->blob, ptrs, (size_t)n, &o, err);
out:
	free(ids);
	free(ptrs);
	return rc;
}
