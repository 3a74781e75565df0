package dev.beamllama.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.beamllama.io.PromptParquet;
import dev.beamllama.model.HuggingFaceCache;
import dev.beamllama.model.demo.DemoCheckpoint;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/** Runs the job in-process as a user would, and reads what it wrote. */
final class TestJob {
  static final ObjectMapper JSON = new ObjectMapper();

  private TestJob() {}

  static Path root() {
    return Path.of(System.getProperty("beamllama.root", "..")).toAbsolutePath().normalize();
  }

  /** The demo checkpoint, written once into .cache/demo-model as scripts/make-demo-model does. */
  static synchronized Path demoModel() {
    Path dir = root().resolve(".cache/demo-model");
    if (!Files.exists(dir.resolve(DemoCheckpoint.MARKER)) || !Files.exists(dir.resolve("model.safetensors"))) {
      try {
        DemoCheckpoint.write(dir, Path.of(System.getProperty("beamllama.tokenizerDir", root().resolve(".cache/tokenizer-llama3").toString())));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return dir;
  }

  record Run(JobSummary summary, String out, String err) {}

  static Run run(String... args) throws Exception {
    return run(HuggingFaceCache.fromEnvironment(), args);
  }

  /** The job with {@code --model} ids looked up in {@code cache}. */
  static Run run(HuggingFaceCache cache, String... args) throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    JobSummary summary = Main.execute(args, cache, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    return new Run(summary, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  /** Runs the job as scripts/beam-llama does and requires a startup error (exit 2): its message. */
  static String startupError(String... args) {
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    PrintStream stream = new PrintStream(err, true, StandardCharsets.UTF_8);
    int status = Main.run(args, stream, stream);
    String message = err.toString(StandardCharsets.UTF_8);
    assertEquals(2, status, message);
    return message;
  }

  /**
   * A Hugging Face hub cache under {@code hfHome} holding the demo checkpoint as {@code id}, laid out
   * as huggingface_hub writes it: refs/main names the commit, the snapshot's files link into blobs/
   * (the blobs link on to the demo files rather than copy 80 MB).
   */
  static HuggingFaceCache demoModelInCache(Path hfHome, String id) throws IOException {
    String commit = "0123456789abcdef0123456789abcdef01234567";
    Path repo = hfHome.resolve("hub/models--" + id.replace("/", "--"));
    Path snapshot = Files.createDirectories(repo.resolve("snapshots").resolve(commit));
    Files.createDirectories(repo.resolve("blobs"));
    try (Stream<Path> files = Files.list(demoModel())) {
      for (Path file : files.toList()) {
        String blob = "blob-" + file.getFileName();
        Files.createSymbolicLink(repo.resolve("blobs").resolve(blob), file.toAbsolutePath());
        Files.createSymbolicLink(snapshot.resolve(file.getFileName()), Path.of("../../blobs").resolve(blob));
      }
    }
    Files.createDirectories(repo.resolve("refs"));
    Files.writeString(repo.resolve("refs/main"), commit);
    return HuggingFaceCache.fromEnvironment(java.util.Map.of("HF_HOME", hfHome.toString()), hfHome.resolve("no-home"));
  }

  /** The records of every shard under {@code prefix} ({@code prefix-SSSSS-of-NNNNN.ext}). */
  static List<JsonNode> shards(String prefix, String extension) throws IOException {
    Path p = Path.of(prefix);
    List<JsonNode> records = new ArrayList<>();
    try (Stream<Path> files = Files.list(p.getParent())) {
      for (Path file : files.filter(f -> f.getFileName().toString().matches(java.util.regex.Pattern.quote(p.getFileName().toString())
          + "-\\d{5}-of-\\d{5}" + java.util.regex.Pattern.quote(extension))).sorted().toList()) {
        if (extension.equals(".parquet")) {
          records.addAll(PromptParquet.read(file));
        } else {
          for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (!line.isBlank()) {
              records.add(JSON.readTree(line));
            }
          }
        }
      }
    }
    return records;
  }

  /** Completions in a stable order with the run-dependent latency removed, for comparing runs. */
  static List<String> comparable(List<JsonNode> completions) {
    return completions.stream()
        .map(c -> {
          ObjectNode copy = ((ObjectNode) c).deepCopy();
          copy.remove("latency_ms");
          return copy;
        })
        .sorted(Comparator.comparing((ObjectNode c) -> c.get("id").asText()).thenComparingInt(c -> c.get("sample_index").asInt()))
        .map(JsonNode::toString)
        .toList();
  }

  static Path writeJsonl(Path file, List<String> lines) throws IOException {
    Files.createDirectories(file.getParent());
    Files.writeString(file, String.join("\n", lines) + "\n", StandardCharsets.UTF_8);
    return file;
  }
}
