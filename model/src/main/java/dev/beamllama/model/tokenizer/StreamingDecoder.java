package dev.beamllama.model.tokenizer;

import java.util.Arrays;

/**
 * Turns generated token ids into text as they arrive, never emitting half of a character: a Korean
 * syllable is three UTF-8 bytes and byte-level BPE may split it across tokens. Text is released only
 * when the decoded window no longer ends in U+FFFD (an incomplete byte sequence).
 */
public final class StreamingDecoder {
  private static final char INCOMPLETE = '\uFFFD';

  private final Tokenizer tokenizer;
  private final boolean skipSpecialTokens;
  private int[] ids = new int[64];
  private int size;
  /** Start of the window whose text has already been emitted in full. */
  private int prefixOffset;
  /** End of that window: tokens from here on have not produced emitted text yet. */
  private int readOffset;

  public StreamingDecoder(Tokenizer tokenizer, boolean skipSpecialTokens) {
    this.tokenizer = tokenizer;
    this.skipSpecialTokens = skipSpecialTokens;
  }

  /** Adds one token and returns the text it completes, possibly empty. */
  public String push(int token) {
    if (size == ids.length) {
      ids = Arrays.copyOf(ids, size * 2);
    }
    ids[size++] = token;
    String emitted = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, readOffset), skipSpecialTokens);
    String window = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, size), skipSpecialTokens);
    if (window.length() > emitted.length() && window.charAt(window.length() - 1) != INCOMPLETE) {
      prefixOffset = readOffset;
      readOffset = size;
      return window.substring(emitted.length());
    }
    return "";
  }

  /** The text still held back when generation ends (an unfinished character decodes as U+FFFD). */
  public String flush() {
    String emitted = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, readOffset), skipSpecialTokens);
    String window = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, size), skipSpecialTokens);
    prefixOffset = readOffset = size;
    return window.length() > emitted.length() ? window.substring(emitted.length()) : "";
  }
}
