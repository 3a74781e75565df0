package dev.beamllama.io;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Splits a byte stream into JSONL lines with their 1-based numbers, decoding UTF-8 strictly. A line
 * over the size limit is reported and skipped without being held in memory; blank lines are not
 * records and are skipped; a UTF-8 byte-order mark at the start is ignored.
 */
final class JsonLines {
  interface Visitor {
    void line(long number, String text) throws IOException;

    void failure(long number, ErrorKind kind, String message) throws IOException;
  }

  private JsonLines() {}

  static void read(InputStream in, long maxLineBytes, Visitor visitor) throws IOException {
    byte[] chunk = new byte[1 << 16];
    byte[] line = new byte[1024];
    int length = 0;
    long lineBytes = 0;
    long number = 1;
    boolean first = true;
    int n;
    while ((n = in.read(chunk)) > 0) {
      for (int i = 0; i < n; i++) {
        byte b = chunk[i];
        if (b == '\n') {
          finish(number++, line, length, lineBytes, maxLineBytes, first, visitor);
          first = false;
          length = 0;
          lineBytes = 0;
          continue;
        }
        lineBytes++;
        if (lineBytes <= maxLineBytes) {
          if (length == line.length) {
            // Long.MAX_VALUE means no limit (ResumeIO, RecordFiles): maxLineBytes + 1 must not overflow.
            line = Arrays.copyOf(line, (int) Math.min(Math.min(maxLineBytes, Integer.MAX_VALUE - 9) + 1, (long) line.length * 2));
          }
          line[length++] = b;
        }
      }
    }
    if (lineBytes > 0) {
      finish(number, line, length, lineBytes, maxLineBytes, first, visitor);
    }
  }

  private static void finish(long number, byte[] line, int length, long lineBytes, long maxLineBytes, boolean first, Visitor visitor)
      throws IOException {
    if (lineBytes > maxLineBytes) {
      visitor.failure(number, ErrorKind.LINE_TOO_LONG, "line of " + lineBytes + " bytes exceeds the limit of " + maxLineBytes
          + " bytes (--maxLineBytes)");
      return;
    }
    int start = first && length >= 3 && (line[0] & 0xff) == 0xEF && (line[1] & 0xff) == 0xBB && (line[2] & 0xff) == 0xBF ? 3 : 0;
    int end = length > start && line[length - 1] == '\r' ? length - 1 : length;
    String text;
    try {
      CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT);
      text = decoder.decode(ByteBuffer.wrap(line, start, end - start)).toString();
    } catch (CharacterCodingException e) {
      visitor.failure(number, ErrorKind.INVALID_UTF8, "the line is not valid UTF-8 (" + e.getMessage() + ")");
      return;
    }
    if (!isJsonWhitespace(text)) {
      visitor.line(number, text);
    }
  }

  /**
   * Whether a line holds only what JSON calls whitespace (space, tab, CR, LF): such a line is no
   * record. Java's {@code isBlank} also takes form feeds, ideographic spaces and separators, which
   * would drop those lines without a dead letter.
   */
  private static boolean isJsonWhitespace(String text) {
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
        return false;
      }
    }
    return true;
  }
}
