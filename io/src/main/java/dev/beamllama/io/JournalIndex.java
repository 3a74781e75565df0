package dev.beamllama.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The samples in a job's journal: where the output's writer reads each finished sample, and where
 * a retried task (Flink after a lost TaskManager) takes the samples its earlier attempt journaled
 * instead of generating them again. One index per JVM and directory; {@link #refresh()} reads only what was
 * appended since the last call, up to each file's last complete line, so a line cut by a crash is
 * never read (and a corrupt one is skipped). The index keeps where each sample's line is, not the
 * line, so it stays small. Samples are keyed by (id, sample_index): the first journaled wins, and
 * every copy of a sample holds the same record (seeds decide it) but for {@code latency_ms}.
 */
public final class JournalIndex {
  private static final Map<String, JournalIndex> INDEXES = new HashMap<>();
  private static final ObjectMapper JSON = new ObjectMapper();

  private record Location(Path file, long offset, int length) {}

  private final Path directory;
  private final Map<Path, Long> readTo = new HashMap<>();
  private final Map<String, Location> samples = new HashMap<>();

  private JournalIndex(Path directory) {
    this.directory = directory;
  }

  /** This JVM's index of {@code directory}, brought up to date. */
  public static JournalIndex of(String directory) {
    JournalIndex index;
    synchronized (INDEXES) {
      index = INDEXES.computeIfAbsent(directory, d -> new JournalIndex(Path.of(d)));
    }
    return index.refresh();
  }

  /** Reads what the journal's files gained since the last refresh. */
  public synchronized JournalIndex refresh() {
    List<Path> files = CompletionJournal.files(directory);
    if (!files.containsAll(readTo.keySet())) { // a journal removed after its job succeeded: forget its samples
      readTo.keySet().retainAll(files);
      samples.values().removeIf(at -> !readTo.containsKey(at.file()));
    }
    for (Path file : files) {
      try (RandomAccessFile in = new RandomAccessFile(file.toFile(), "r")) {
        long lineStart = readTo.getOrDefault(file, 0L);
        long end = in.length();
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        byte[] chunk = new byte[1 << 20];
        in.seek(lineStart);
        for (long at = lineStart; at < end; ) {
          int n = in.read(chunk, 0, (int) Math.min(chunk.length, end - at));
          if (n <= 0) {
            break;
          }
          int from = 0;
          for (int i = 0; i < n; i++) {
            if (chunk[i] == '\n') {
              line.write(chunk, from, i - from);
              index(file, lineStart, line.toByteArray());
              lineStart = at + i + 1;
              line.reset();
              from = i + 1;
            }
          }
          line.write(chunk, from, n - from);
          at += n;
        }
        readTo.put(file, lineStart); // a last line without its newline is read again, whole, next time
      } catch (IOException e) {
        throw new UncheckedIOException("cannot read the journal " + file, e);
      }
    }
    return this;
  }

  private void index(Path file, long offset, byte[] line) {
    CompletionRecord record = parse(new String(line, StandardCharsets.UTF_8));
    if (record != null) {
      samples.putIfAbsent(key(record.id(), record.sampleIndex()), new Location(file, offset, line.length));
    }
  }

  public synchronized int size() {
    return samples.size();
  }

  /** The journaled record of a sample, or null when it is not in the journal. */
  public CompletionRecord find(String id, int sampleIndex) {
    Location at;
    synchronized (this) {
      at = samples.get(key(id, sampleIndex));
    }
    if (at == null) {
      return null;
    }
    try (RandomAccessFile in = new RandomAccessFile(at.file().toFile(), "r")) {
      byte[] line = new byte[at.length()];
      in.seek(at.offset());
      in.readFully(line);
      return parse(new String(line, StandardCharsets.UTF_8));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the journal " + at.file(), e);
    }
  }

  /**
   * The journaled record of a sample this job made: read again once when it is missing (it was
   * appended after the last refresh), and an error when it is still missing, for the output would
   * lack it.
   */
  public CompletionRecord require(String id, int sampleIndex) {
    CompletionRecord record = find(id, sampleIndex);
    if (record == null) {
      record = refresh().find(id, sampleIndex);
    }
    if (record == null) {
      throw new IllegalStateException("sample " + sampleIndex + " of record " + id + " is not in the journal " + directory
          + ", which the output is written from: was the journal removed or moved while the job ran?");
    }
    return record;
  }

  private static String key(String id, int sampleIndex) {
    return sampleIndex + "#" + id;
  }

  /** A completion line as a record; null for the header or a line that is not a whole completion. */
  private static CompletionRecord parse(String line) {
    try {
      JsonNode row = JSON.readTree(line);
      if (row == null || !row.isObject() || CompletionJournal.isHeader(row) || !CompletionRecord.isWhole(row)) {
        return null;
      }
      return JSON.treeToValue(row, CompletionRecord.class);
    } catch (IOException | IllegalArgumentException e) {
      return null;
    }
  }
}
