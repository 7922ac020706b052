/* The floor for bench/client.lua: a keep-alive libcurl POST loop in plain C. One easy handle,
 * options and headers set once, the reply appended to a reused buffer, no signing, no decoding.
 *
 *   bare-curl URL HEADERS_FILE BODY_FILE N [read]
 *
 * HEADERS_FILE: one "name: value" line per request header; BODY_FILE: the request body. Runs N
 * requests (after N/10 to warm up) and prints "<wall us/call> <cpu us/call> <reply bytes>".
 * Exits 1 on any error or non-200 reply. Built by scripts/bench-client into build/bench/.
 * With "read", the body goes through CURLOPT_READFUNCTION instead of CURLOPT_POSTFIELDS (as
 * csrc/http.c does): libcurl 7.x then sends headers and body in two send() calls. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

struct reply {
    char *p;
    size_t len, cap;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct reply *r = ud;
    size_t n = size * nmemb;
    if (r->cap - r->len < n) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap - r->len < n)
            cap *= 2;
        char *p = realloc(r->p, cap);
        if (p == NULL)
            return 0;
        r->p = p;
        r->cap = cap;
    }
    memcpy(r->p + r->len, data, n);
    r->len += n;
    return n;
}

struct upload {
    const char *p;
    size_t len, off;
};

static size_t on_read(char *out, size_t size, size_t nmemb, void *ud)
{
    struct upload *u = ud;
    size_t n = size * nmemb, left = u->len - u->off;
    if (n > left)
        n = left;
    memcpy(out, u->p + u->off, n);
    u->off += n;
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    (void)data;
    (void)ud;
    return size * nmemb;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    size_t got;
    while (p != NULL && (got = fread(p + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0)
            p = realloc(p, cap *= 2);
    }
    fclose(f);
    if (p == NULL) {
        fputs("out of memory\n", stderr);
        exit(1);
    }
    p[n] = '\0';
    *len = n;
    return p;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run(CURL *c, struct reply *r, struct upload *u, long n)
{
    for (long i = 0; i < n; i++) {
        r->len = 0;
        u->off = 0;
        CURLcode rc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (rc != CURLE_OK || status != 200) {
            fprintf(stderr, "bare-curl: request %ld: %s, status %ld\n", i, curl_easy_strerror(rc),
                    status);
            exit(1);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 5 && !(argc == 6 && strcmp(argv[5], "read") == 0)) {
        fputs("usage: bare-curl URL HEADERS_FILE BODY_FILE N [read]\n", stderr);
        return 2;
    }
    long n = atol(argv[4]);
    size_t hlen, blen;
    char *hdrs = slurp(argv[2], &hlen);
    char *body = slurp(argv[3], &blen);
    struct curl_slist *list = NULL;
    for (char *line = strtok(hdrs, "\n"); line != NULL; line = strtok(NULL, "\n"))
        list = curl_slist_append(list, line);
    /* as csrc/http.c: no Expect: 100-continue, no Accept: * / * */
    list = curl_slist_append(list, "Expect:");
    list = curl_slist_append(list, "Accept:");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    struct reply r = {NULL, 0, 0};
    curl_easy_setopt(c, CURLOPT_URL, argv[1]);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    struct upload u = {body, blen, 0};
    if (argc == 6) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, (void *)&u);
    } else {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)&r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);

    run(c, &r, &u, n / 10 > 0 ? n / 10 : 1);
    double w0 = wall(), c0 = cpu();
    run(c, &r, &u, n);
    double wall_us = (wall() - w0) / (double)n * 1e6, cpu_us = (cpu() - c0) / (double)n * 1e6;
    printf("%.3f %.3f %lu\n", wall_us, cpu_us, (unsigned long)r.len);

    curl_easy_cleanup(c);
    curl_slist_free_all(list);
    free(r.p);
    free(hdrs);
    free(body);
    return 0;
}
