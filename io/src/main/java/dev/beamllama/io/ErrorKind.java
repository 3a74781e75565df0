package dev.beamllama.io;

import java.util.Locale;

/** Why a record went to the dead letters. Written in lower snake case ({@code malformed_json}). */
public enum ErrorKind {
  /** The file could not be opened or read. */
  UNREADABLE_FILE,
  /** A Parquet file whose footer or pages cannot be decoded. */
  CORRUPT_FILE,
  /** A JSONL line over the maximum line size. */
  LINE_TOO_LONG,
  /** Bytes that are not UTF-8: a JSONL line, or a string of a Parquet row. */
  INVALID_UTF8,
  /** A line that is not one JSON object. */
  MALFORMED_JSON,
  /** No {@code id}, or a null one. */
  MISSING_ID,
  /** An {@code id} that is not a non-empty string of Unicode text. */
  INVALID_ID,
  /** A field of the wrong JSON type. */
  WRONG_TYPE,
  /**
   * A value that cannot be used: a sampling override out of range (temperature < 0, n < 1, ...), an
   * empty role, or text that is not Unicode (a JSON escape of a lone surrogate).
   */
  INVALID_VALUE,
  /** The task's content fields are absent. */
  MISSING_FIELD,
  /** The task's content fields are present but empty. */
  EMPTY_CONTENT,
  /** A second record with an id already seen. */
  DUPLICATE_ID,
  /** The prompt does not fit the engine's context (the model's positions, or what its KV cache holds) with room to generate. */
  PROMPT_TOO_LONG,
  /** The chat template refused the conversation. */
  TEMPLATE_ERROR,
  /** The engine refused the request. */
  GENERATION_FAILED;

  public String label() {
    return name().toLowerCase(Locale.ROOT);
  }
}
