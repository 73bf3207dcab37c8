// Template form: show the text box for text templates, the parts of the chosen type otherwise.
(function () {
  "use strict";
  var PARTS = {
    text: [], image: ["url"], video: ["url", "thumb_url", "duration_s"],
    file: ["url", "filename", "size"], link: ["title", "url", "desc", "thumb_url"],
    card: ["contact_id"], location: ["latitude", "longitude", "title", "address"]
  };
  var ALL = ["url", "thumb_url", "duration_s", "filename", "size", "title", "desc", "contact_id",
             "latitude", "longitude", "address"];
  function row(name) { return document.querySelector(".form-row.field-" + name) ||
                              document.querySelector(".field-" + name); }
  function show() {
    var select = document.getElementById("id_message_type");
    if (!select) { return; }
    var used = PARTS[select.value] || [];
    var text = row("content");
    if (text) { text.style.display = select.value === "text" ? "" : "none"; }
    ALL.forEach(function (name) {
      var r = row("part_" + name);
      if (r) { r.style.display = used.indexOf(name) >= 0 ? "" : "none"; }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var select = document.getElementById("id_message_type");
    if (select) { select.addEventListener("change", show); show(); }
  });
})();
