package dev.beamllama.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * The completion journal: Beam's sinks write only when a job succeeds, so each worker also appends
 * every sample it finishes to a file of its own in the journal directory ({@code <output>-journal/}),
 * synced every few seconds or samples. A job that dies loses only the samples in flight: a run with
 * {@code --resumeFrom} reads the journal with the earlier output's shards ({@link ResumeIO}), and a
 * retried task takes the samples its earlier attempt journaled ({@link JournalIndex}) instead of
 * generating them again. Lines are the output's own JSON, after one header line naming the job's
 * settings, so a journal of another job is refused instead of mixed in ({@link #checkSameJob}).
 */
public final class CompletionJournal {
  /** The header line's marker field; its value is the format version. */
  public static final String HEADER_FIELD = "beam_llama_journal";
  private static final int VERSION = 1;
  /** Sync at least this often and every this many samples: a crash loses at most that much finished work. */
  public static final int DEFAULT_SYNC_SECONDS = 5;
  public static final int DEFAULT_SYNC_SAMPLES = 256;
  private static final String FILE_PREFIX = "journal-";
  private static final ObjectMapper JSON = new ObjectMapper();

  private CompletionJournal() {}

  /**
   * Where and how a job journals: the directory, the settings that decide its records (model, task,
   * sampling, seed, ...: two jobs that differ in any of them must not share samples), how often
   * appended samples are synced to disk (every {@code syncMillis} or every {@code syncSamples}), and
   * the run: each run of a job writes files of its own, even in a JVM where an earlier run failed and
   * left its writer open.
   */
  public record Spec(String directory, SortedMap<String, String> job, long syncMillis, int syncSamples, String run) implements Serializable {
    public Spec {
      if (syncMillis < 1 || syncSamples < 1) {
        throw new IllegalArgumentException("the journal's sync interval and sample count must be positive, got " + syncMillis
            + " ms and " + syncSamples + " samples");
      }
      job = new TreeMap<>(job);
    }
  }

  /** The journal directory of an output prefix. */
  public static String directoryOf(String outputPrefix) {
    return outputPrefix + "-journal";
  }

  static String fileName(String worker) {
    return FILE_PREFIX + worker + RecordFormat.JSONL.extension();
  }

  static String headerLine(Map<String, String> job) {
    try {
      return JSON.writeValueAsString(Map.of(HEADER_FIELD, VERSION, "job", new TreeMap<>(job)));
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Whether a JSON line is a journal's header rather than a completion. */
  public static boolean isHeader(JsonNode row) {
    return row.has(HEADER_FIELD);
  }

  /** The journal files in a directory (none when it does not exist). */
  public static List<Path> files(Path directory) {
    if (!Files.isDirectory(directory)) {
      return List.of();
    }
    try (Stream<Path> list = Files.list(directory)) {
      return list.filter(CompletionJournal::isJournalFile).sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list the journal " + directory, e);
    }
  }

  private static boolean isJournalFile(Path p) {
    String name = p.getFileName().toString();
    return name.startsWith(FILE_PREFIX) && name.endsWith(RecordFormat.JSONL.extension()) && Files.isRegularFile(p);
  }

  /**
   * Refuses journals under {@code root} (a journal directory, or an earlier output directory holding
   * one) written by a job with other settings: their samples would be taken as this job's. A local
   * path only; elsewhere nothing is checked.
   */
  public static void checkSameJob(String root, Map<String, String> job) {
    if (root.contains("://") || !Files.isDirectory(Path.of(root))) {
      return;
    }
    List<Path> journals = new ArrayList<>();
    try (Stream<Path> walk = Files.walk(Path.of(root))) {
      walk.filter(CompletionJournal::isJournalFile).forEach(journals::add);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list " + root, e);
    }
    SortedMap<String, String> want = new TreeMap<>(job);
    for (Path file : journals) {
      SortedMap<String, String> found = jobOf(file);
      if (found != null && !found.equals(want)) {
        throw new IllegalArgumentException("the journal " + file + " was written by a job with other settings (" + differences(found, want)
            + "): its samples are not this job's. Rerun with that job's settings, or write to another --output");
      }
    }
  }

  /** The job settings in a journal file's header; null for an empty file (its worker died before writing). */
  private static SortedMap<String, String> jobOf(Path file) {
    String first;
    try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      first = in.readLine();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the journal " + file, e);
    }
    if (first == null || first.isEmpty()) {
      return null;
    }
    try {
      JsonNode header = JSON.readTree(first);
      if (header != null && isHeader(header) && header.get("job") != null && header.get("job").isObject()) {
        SortedMap<String, String> job = new TreeMap<>();
        header.get("job").fields().forEachRemaining(e -> job.put(e.getKey(), e.getValue().asText()));
        return job;
      }
    } catch (JsonProcessingException e) {
      // Falls through: not a header.
    }
    throw new IllegalArgumentException("the journal " + file + " does not start with a beam-llama journal header: remove it, or "
        + "write to another --output");
  }

  private static String differences(SortedMap<String, String> there, SortedMap<String, String> here) {
    List<String> d = new ArrayList<>();
    TreeMap<String, String> keys = new TreeMap<>(there);
    keys.putAll(here);
    for (String key : keys.keySet()) {
      String a = there.get(key);
      String b = here.get(key);
      if (a == null ? b != null : !a.equals(b)) {
        d.add(key + " " + b + " here, " + a + " there");
      }
    }
    return String.join("; ", d);
  }
}
