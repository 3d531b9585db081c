// Drag-and-drop and "search as soon as a photo is chosen". The page works without it.
(function () {
  const form = document.getElementById("search-form");
  const drop = document.getElementById("drop");
  if (!form || !drop) return;
  const inputs = [document.getElementById("photo-input"), document.getElementById("camera-input")];
  const submitWith = (input) => {
    inputs.forEach((other) => { if (other !== input) other.disabled = true; });
    form.submit();
  };
  inputs.forEach((input) => input && input.addEventListener("change", () => input.files.length && submitWith(input)));
  ["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    if (!event.dataTransfer.files.length) return;
    const input = inputs[0];
    input.files = event.dataTransfer.files;
    submitWith(input);
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); inputs[0].click(); }
  });
})();
