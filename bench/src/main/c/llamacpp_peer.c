// llama.cpp's C API behind three calls with plain arguments, so that the benchmark calls it through
// FFM without mirroring llama.cpp's parameter structs (their layout changes between releases; the
// compiler reads it from the release's own llama.h here). Built by scripts/fetch-llamacpp against the
// prebuilt libraries of npm @node-llama-cpp/linux-x64; benchmark code, never part of the engine.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-backend.h"
#include "llama.h"

typedef struct {
  struct llama_model *model;
  struct llama_context *ctx;
  struct llama_batch batch;
  int batch_capacity;
  int vocab;
} peer;

static int64_t now_nanos(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void quiet(enum ggml_log_level level, const char *text, void *user) {
  (void)user;
  if (level == GGML_LOG_LEVEL_ERROR) {
    fputs(text, stderr);
  }
}

// Loads the CPU backends found in backend_dir (ggml picks the best variant for this CPU) and the
// model; a context for n_seq sequences of up to seq_ctx tokens each. NULL and a message on failure.
void *peer_open(const char *backend_dir, const char *gguf, int threads, int n_seq, int seq_ctx, int batch_capacity,
                char *error, int error_len) {
  llama_log_set(quiet, NULL);
  ggml_backend_load_all_from_path(backend_dir);
  llama_backend_init();
  struct llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  struct llama_model *model = llama_model_load_from_file(gguf, mp);
  if (model == NULL) {
    snprintf(error, error_len, "llama.cpp could not load %s", gguf);
    return NULL;
  }
  struct llama_context_params cp = llama_context_default_params();
  cp.n_ctx = (uint32_t)(n_seq * seq_ctx);
  cp.n_batch = (uint32_t)batch_capacity;
  cp.n_ubatch = (uint32_t)batch_capacity;
  cp.n_seq_max = (uint32_t)n_seq;
  cp.n_threads = threads;
  cp.n_threads_batch = threads;
  cp.no_perf = true;
  struct llama_context *ctx = llama_init_from_model(model, cp);
  if (ctx == NULL) {
    llama_model_free(model);
    snprintf(error, error_len, "llama.cpp could not make a context of %d sequences x %d tokens", n_seq, seq_ctx);
    return NULL;
  }
  peer *p = calloc(1, sizeof(peer));
  p->model = model;
  p->ctx = ctx;
  p->batch = llama_batch_init(batch_capacity, 0, 1);
  p->batch_capacity = batch_capacity;
  p->vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  return p;
}

static void add(peer *p, int token, int pos, int seq, int logits) {
  int i = p->batch.n_tokens++;
  p->batch.token[i] = token;
  p->batch.pos[i] = pos;
  p->batch.n_seq_id[i] = 1;
  p->batch.seq_id[i][0] = seq;
  p->batch.logits[i] = (int8_t)logits;
}

static int argmax(peer *p, int batch_index) {
  const float *logits = llama_get_logits_ith(p->ctx, batch_index);
  int best = 0;
  for (int v = 1; v < p->vocab; v++) {
    if (logits[v] > logits[best]) {
      best = v;
    }
  }
  return best;
}

// Greedy generation of new_tokens tokens for each of n_seq prompts of prompt_len ids (row-major in
// prompts), the way a batched server runs them: every prompt's prefill (in batches of at most the
// context's capacity), then one decode call per step with a token of every sequence. Writes the
// tokens to out[seq * new_tokens + i] and the nanoseconds of the prefill and of the decode steps to
// nanos[0] and nanos[1]. Returns 0, or llama_decode's failure code.
int peer_generate(void *handle, int n_seq, const int32_t *prompts, int prompt_len, int new_tokens, int32_t *out,
                  int64_t *nanos) {
  peer *p = handle;
  llama_memory_clear(llama_get_memory(p->ctx), true);
  int64_t start = now_nanos();
  int rc = 0;
  p->batch.n_tokens = 0;
  for (int s = 0; s < n_seq && rc == 0; s++) {
    for (int i = 0; i < prompt_len && rc == 0; i++) {
      add(p, prompts[s * prompt_len + i], i, s, i == prompt_len - 1);
      if (p->batch.n_tokens == p->batch_capacity || (s == n_seq - 1 && i == prompt_len - 1)) {
        rc = llama_decode(p->ctx, p->batch);
        // Logits are asked for each prompt's last token only: its sequence's first new token.
        for (int b = 0; b < p->batch.n_tokens && rc == 0; b++) {
          if (p->batch.logits[b]) {
            out[p->batch.seq_id[b][0] * new_tokens] = argmax(p, b);
          }
        }
        p->batch.n_tokens = 0;
      }
    }
  }
  int64_t prefilled = now_nanos();
  for (int step = 1; step < new_tokens && rc == 0; step++) {
    p->batch.n_tokens = 0;
    for (int s = 0; s < n_seq; s++) {
      add(p, out[s * new_tokens + step - 1], prompt_len + step - 1, s, 1);
    }
    rc = llama_decode(p->ctx, p->batch);
    for (int s = 0; s < n_seq && rc == 0; s++) {
      out[s * new_tokens + step] = argmax(p, s);
    }
  }
  nanos[0] = prefilled - start;
  nanos[1] = now_nanos() - prefilled;
  return rc;
}

int peer_vocab(void *handle) {
  return ((peer *)handle)->vocab;
}

// The logits of every position of one prompt (at most the context's batch capacity), row by row
// into out. Returns 0, or llama_decode's failure code.
int peer_logits(void *handle, const int32_t *prompt, int prompt_len, float *out) {
  peer *p = handle;
  llama_memory_clear(llama_get_memory(p->ctx), true);
  p->batch.n_tokens = 0;
  for (int i = 0; i < prompt_len; i++) {
    add(p, prompt[i], i, 0, 1);
  }
  int rc = llama_decode(p->ctx, p->batch);
  for (int i = 0; i < prompt_len && rc == 0; i++) {
    memcpy(out + (size_t)i * p->vocab, llama_get_logits_ith(p->ctx, i), sizeof(float) * p->vocab);
  }
  return rc;
}

void peer_close(void *handle) {
  peer *p = handle;
  llama_batch_free(p->batch);
  llama_free(p->ctx);
  llama_model_free(p->model);
  free(p);
}
