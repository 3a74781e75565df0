package dev.beamllama.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SummarizeRecordsTest {
  @TempDir Path dir;

  @Test
  void recordsHaveUniqueIdsAndNoTwoTextsAlike() throws Exception {
    Path samples = Path.of("..", "samples", "summarize.jsonl");
    int paragraphs = (int) Files.readAllLines(samples).stream().filter(l -> !l.isBlank()).count();
    int count = paragraphs * 7 + 3; // past one round of every paragraph's rotations for the short ones
    Path out = SummarizeRecords.write(samples, count, dir.resolve("sub/prompts.jsonl"));
    List<String> lines = Files.readAllLines(out, StandardCharsets.UTF_8);
    assertEquals(count, lines.size());
    ObjectMapper json = new ObjectMapper();
    Set<String> ids = new HashSet<>();
    Set<String> texts = new HashSet<>();
    for (String line : lines) {
      JsonNode record = json.readTree(line);
      ids.add(record.get("id").asText());
      texts.add(record.get("text").asText());
    }
    assertEquals(count, ids.size(), "ids");
    assertEquals(count, texts.size(), "texts");
  }
}
