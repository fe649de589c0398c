/* azure_outcome.c - one finished Azure request judged: retried or final,
 * its ERR_CLASS (azure_retry.c), and one line that says what to do about
 * it, with every secret redacted (azure_request_finish, azure_redact,
 * azure_error_local).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "azure_request.h"
#include "azure_token.h"
#include "azure_xml.h"
#include "child_status.h"
#include "log.h"

/* Replaces text[start, start+len) with the mark, truncating the tail if
 * the mark is longer than what it hides and the buffer is full. */
static void redact_span(char *text, size_t size, size_t start, size_t len)
{
	static const char mark[] = "[REDACTED]";
	const size_t mlen = sizeof(mark) - 1;
	size_t tail = strlen(text + start + len);

	if (start + mlen >= size) {
		size_t fit = size - 1 - start;
		memcpy(text + start, mark, fit);
		text[start + fit] = '\0';
		return;
	}
	if (start + mlen + tail > size - 1)
		tail = size - 1 - start - mlen;
	memmove(text + start + mlen, text + start + len, tail);
	text[start + mlen + tail] = '\0';
	memcpy(text + start, mark, mlen);
}

void azure_redact(const struct azure_client *client, char *text, size_t size)
{
	const char *secrets[2] = { client ? client->conn.sas : NULL,
				   client ? client->b64_key : NULL };
	size_t pos;

	if (size == 0)
		return;
	text[size - 1] = '\0';
	for (size_t s = 0; s < 2; s++) {
		const char *secret = secrets[s];
		size_t slen = secret ? strlen(secret) : 0;
		char *hit;
		if (slen < 4)
			continue;
		pos = 0;
		while ((hit = strstr(text + pos, secret)) != NULL) {
			pos = (size_t)(hit - text);
			redact_span(text, size, pos, slen);
			pos += 10;
			if (pos >= strlen(text))
				break;
		}
	}
	/* Any SAS signature, including one we did not issue. */
	pos = 0;
	for (char *p; (p = strcasestr(text + pos, "sig=")) != NULL;) {
		pos = (size_t)(p - text) + 4;
		size_t len = strcspn(text + pos, "&\"' ;,)>\t\r\n");
		if (len > 0 && strncmp(text + pos, "[REDACTED]", 10) != 0)
			redact_span(text, size, pos, len);
		if (pos >= strlen(text))
			break;
	}
}

void azure_error_local(struct azure_error *err, int sys_errno, const char *fmt, ...)
{
	va_list ap;

	memset(err, 0, sizeof(*err));
	err->sys_errno = sys_errno;
	err->curl_code = CURLE_OK;
	err->err_class = ERR_CLASS_LOCAL;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* The host (and port) for messages: never the path or query. */
static const char *origin_host(const struct azure_client *c)
{
	const char *p = strstr(c->origin, "://");
	return p ? p + 3 : c->origin;
}

/* For a failure that is about the settings rather than the moment: what
 * went wrong, in words an operator acts on, around the endpoint's origin
 * (scheme://host:port, which holds no secret).  false for the others. */
static bool settings_problem(CURLcode result, const char *err_class, const char **pre,
			     const char **post)
{
	*post = "";
	if (strcmp(err_class, ERR_CLASS_UNREACHABLE) == 0) {
		switch (result) {
		case CURLE_COULDNT_CONNECT:
			*pre = "nothing listens at ";
			break;
		case CURLE_COULDNT_RESOLVE_HOST:
			*pre = "the host name of ";
			*post = " does not resolve";
			break;
		case CURLE_COULDNT_RESOLVE_PROXY:
			*pre = "the proxy's host name (https_proxy, all_proxy) does not "
			       "resolve, so nothing reaches ";
			break;
		default:
			*pre = "no TLS handshake with ";
			*post = " (is the scheme, https or http, right?)";
			break;
		}
		return true;
	}
	if (strcmp(err_class, ERR_CLASS_CONFIG) == 0) {
		if (result == CURLE_URL_MALFORMAT || result == CURLE_UNSUPPORTED_PROTOCOL) {
			*pre = "the endpoint ";
			*post = " cannot be used";
		} else {
			*pre = "the TLS certificate of ";
			*post = " is not accepted: check the host name in BlobEndpoint and the "
				"system's CA certificates";
		}
		return true;
	}
	return false;
}

static void describe_failure(struct azure_request *req, CURLcode result,
			     struct azure_error *err, const char *azure_message)
{
	struct azure_client *c = req->client;
	char after[48] = "";
	long status = req->resp.status;
	const char *code = err->code;
	const char *pre, *post;
	bool settings = result != CURLE_OK &&
			settings_problem(result, err->err_class, &pre, &post);

	if (req->attempts > 1)
		snprintf(after, sizeof(after), " (after %d attempts)", req->attempts);

	if (result != CURLE_OK && req->sink_errno != 0 && result == CURLE_WRITE_ERROR) {
		snprintf(err->message, sizeof(err->message), "%s '%s': %s: %s", req->op,
			 req->what, req->sink != NULL ? "writing the data failed"
						      : "cannot store the answer",
			 strerror(req->sink_errno));
	} else if (settings) {
		snprintf(err->message, sizeof(err->message), "%s '%s': %s%s%s (%s)%s", req->op,
			 req->what, pre, c->origin, post,
			 req->errbuf[0] ? req->errbuf : curl_easy_strerror(result), after);
	} else if (result != CURLE_OK) {
		snprintf(err->message, sizeof(err->message), "%s '%s': %s: %s%s", req->op,
			 req->what, origin_host(c),
			 req->errbuf[0] ? req->errbuf : curl_easy_strerror(result), after);
	} else if ((status == 401 || status == 403) && c->tokens != NULL) {
		snprintf(err->message, sizeof(err->message),
			 "Azure refused the token of %s (%ld %s) for %s '%s': %s%s%s",
			 azure_token_origin(c->tokens), status, *code ? code : "no code",
			 req->op, req->what,
			 strcmp(code, "AuthorizationPermissionMismatch") == 0 ?
			 "give the identity the role Storage Blob Data Contributor on the "
			 "container (role assignments take minutes to apply)" :
			 "check that the identity belongs to this account's tenant",
			 *err->request_id ? "; request id " : "", err->request_id);
	} else if (status == 401 || status == 403) {
		/* Azure's text for these quotes our signature and string to
		 * sign: useless to an operator, so it is left out. */
		snprintf(err->message, sizeof(err->message),
			 "Azure refused the credentials (%ld %s) for %s '%s': check the "
			 "account key / SAS (and its permissions) and the clock%s%s",
			 status, *code ? code : "no code", req->op, req->what,
			 *err->request_id ? "; request id " : "", err->request_id);
	} else if (status == 404 && strcmp(code, "ContainerNotFound") == 0) {
		/* With [azure] create_container = no nothing creates it for us;
		 * Azure's own text would not say which container. */
		snprintf(err->message, sizeof(err->message),
			 "%s '%s': container '%s' does not exist at %s (HTTP 404 "
			 "ContainerNotFound): create it, or set [azure] create_container = "
			 "yes%s%s", req->op, req->what, c->container, origin_host(c),
			 *err->request_id ? "; request id " : "", err->request_id);
	} else {
		snprintf(err->message, sizeof(err->message), "%s '%s': HTTP %ld%s%s%s%s%s%s",
			 req->op, req->what, status, *code ? " " : "", code,
			 *azure_message ? ": " : "", azure_message,
			 *err->request_id ? "; request id " : "", err->request_id);
		size_t used = strlen(err->message);
		snprintf(err->message + used, sizeof(err->message) - used, "%s", after);
	}
	azure_redact(c, err->message, sizeof(err->message));
}

enum azure_outcome azure_request_finish(struct azure_request *req, CURLcode result,
					struct azure_error *err)
{
	struct azure_client *c = req->client;
	long status = req->resp.status;
	char azure_message[320] = "";
	bool retryable;

	memset(err, 0, sizeof(*err));
	err->status = status;
	err->curl_code = result;
	err->attempts = req->attempts;
	err->sys_errno = req->sink_errno;
	snprintf(err->request_id, sizeof(err->request_id), "%s", req->resp.request_id);
	/* Judged before this attempt counts: a refusal now, after an answer
	 * before, is an outage. */
	bool answered_before = c->answered;
	if (status > 0)
		c->answered = true;

	if (result == CURLE_OK && status >= 200 && status < 300) {
		if (req->want_meta && req->resp.meta_failed) {
			azure_error_local(err, ENOMEM, "%s '%s': out of memory", req->op, req->what);
			return AZURE_FAILED;
		}
		return AZURE_DONE;
	}

	if (result == CURLE_OK) {
		char body_code[96];
		azure_parse_error_body(req->resp_body, req->resp_body_len, body_code,
				       sizeof(body_code), azure_message, sizeof(azure_message));
		snprintf(err->code, sizeof(err->code), "%s",
			 req->resp.error_code[0] ? req->resp.error_code : body_code);
		retryable = azure_retry_status(status);
		/* An expired or revoked token: Azure says 401, Azurite 403
		 * AuthenticationFailed.  Renew once and try again at once; a
		 * missing role (403 AuthorizationPermissionMismatch) is not
		 * the token's fault and stays final. */
		if (c->tokens != NULL && !req->token_renewed && req->sink_bytes == 0 &&
		    (status == 401 || (status == 403 &&
				       (strcmp(err->code, "AuthenticationFailed") == 0 ||
					strcmp(err->code, "InvalidAuthenticationInfo") == 0)))) {
			req->token_renewed = true;
			azure_token_invalidate(c->tokens);
			msg_info("%s '%s': HTTP %ld %s: renewing the token", req->op, req->what,
				 status, err->code);
			req->next_delay_ms = 0;
			return AZURE_RETRY;
		}
	} else {
		retryable = azure_retry_transport(result) && req->sink_errno == 0;
	}
	err->err_class = azure_error_class(status, result, answered_before);
	/* Bytes already handed to a sink cannot be taken back: the caller
	 * resumes from where the sink got to. */
	if (req->sink_bytes > 0)
		retryable = false;

	int budget = azure_retry_budget(c->retry.max_retries, result, answered_before);
	if (retryable && req->attempts <= budget) {
		long delay = azure_retry_backoff_ms(&c->retry, req->attempts - 1,
						    req->last_delay_ms, &c->rng);
		if (req->resp.retry_after_ms >= 0)
			delay = req->resp.retry_after_ms;
		req->last_delay_ms = delay;
		req->next_delay_ms = delay;
		if (result != CURLE_OK)
			msg_warn("%s '%s': %s: %s; retry %d of %d in %.1f s", req->op, req->what,
				 origin_host(c), req->errbuf[0] ? req->errbuf
								: curl_easy_strerror(result),
				 req->attempts, budget, (double)delay / 1000);
		else
			msg_warn("%s '%s': HTTP %ld%s%s; retry %d of %d in %.1f s", req->op,
				 req->what, status, *err->code ? " " : "", err->code,
				 req->attempts, budget, (double)delay / 1000);
		return AZURE_RETRY;
	}
	describe_failure(req, result, err, azure_message);
	return AZURE_FAILED;
}
