package dev.beamllama.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Summarize-sized prompt records for benchmarks: {@code FeedingBenchmark}'s input and the job that
 * {@code scripts/gpu-check --job} runs on a GPU machine.
 *
 * <p>{@code SummarizeRecords SAMPLES.jsonl COUNT OUT.jsonl}
 */
public final class SummarizeRecords {
  private SummarizeRecords() {}

  public static void main(String[] args) throws IOException {
    if (args.length != 3) {
      System.err.println("usage: SummarizeRecords SAMPLES.jsonl (records with a \"text\") COUNT OUT.jsonl");
      System.exit(2);
    }
    int count = Integer.parseInt(args[1]);
    if (count < 1) {
      throw new IllegalArgumentException("COUNT must be positive, not " + count);
    }
    System.out.println(write(Path.of(args[0]), count, Path.of(args[2])));
  }

  /**
   * {@code count} summarize records made from the sample paragraphs, each a paragraph with its
   * sentences rotated by how many times the paragraphs have gone round: prompts of a few hundred
   * tokens, no two alike (the prefix cache shares only the template's head, as in a real job).
   */
  static Path write(Path samples, int count, Path out) throws IOException {
    ObjectMapper json = new ObjectMapper();
    List<String[]> paragraphs = new ArrayList<>();
    for (String line : Files.readAllLines(samples, StandardCharsets.UTF_8)) {
      if (!line.isBlank()) {
        paragraphs.add(json.readTree(line).get("text").asText().split("(?<=\\.) "));
      }
    }
    Files.createDirectories(out.toAbsolutePath().getParent());
    List<String> lines = new ArrayList<>(count);
    for (int i = 0; i < count; i++) {
      String[] sentences = paragraphs.get(i % paragraphs.size());
      int shift = (i / paragraphs.size()) % sentences.length;
      int variant = i / (paragraphs.size() * sentences.length);
      StringBuilder text = new StringBuilder(variant > 0 ? "(" + variant + ") " : "");
      for (int s = 0; s < sentences.length; s++) {
        text.append(s > 0 ? " " : "").append(sentences[(s + shift) % sentences.length]);
      }
      ObjectNode record = json.createObjectNode().put("id", String.format(Locale.ROOT, "sum-%05d", i)).put("text", text.toString());
      lines.add(json.writeValueAsString(record));
    }
    Files.write(out, lines, StandardCharsets.UTF_8);
    return out;
  }

}
